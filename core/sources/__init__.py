"""Sources: directories and identity providers users come from. `ldap` syncs users and groups
in from an LDAP directory and checks their passwords against it."""
