"""LDAP result codes (RFC 4511 appendix A) and the protocolOp tags of responses, and the
answers the server sends most (encoded once). Used by `protocol` and `outpost`."""

from __future__ import annotations

from tessera.outposts.ldap import ber

SUCCESS = 0
OPERATIONS_ERROR = 1
PROTOCOL_ERROR = 2
TIME_LIMIT_EXCEEDED = 3
SIZE_LIMIT_EXCEEDED = 4
COMPARE_FALSE = 5
COMPARE_TRUE = 6
AUTH_METHOD_NOT_SUPPORTED = 7
UNAVAILABLE_CRITICAL_EXTENSION = 12
CONSTRAINT_VIOLATION = 19
NO_SUCH_OBJECT = 32
INVALID_DN_SYNTAX = 34
INVALID_CREDENTIALS = 49
INSUFFICIENT_ACCESS = 50
BUSY = 51
UNAVAILABLE = 52
UNWILLING = 53

# protocolOp tags of responses
BIND_RESPONSE = 0x61
SEARCH_DONE = 0x65
BIND_OK = ber.result(BIND_RESPONSE, SUCCESS)
SEARCH_OK = ber.result(SEARCH_DONE, SUCCESS)
COMPARE_RESPONSE = 0x6F
EXTENDED_RESPONSE = 0x78
