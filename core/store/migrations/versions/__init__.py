"""Versioned migrations, oldest first."""
