"""iam_lib_pgconnect: PostgreSQL on the IAM appliance through iam-pgbroker.

A drop-in replacement for the old library of the same name: the same
`connect()` and `IamDbConnection` API, but instead of reading pwfiles and
asking Docker itself (as root), it talks to the iam-pgbroker service over its
Unix socket ($IAM_PGBROKER_SOCKET, default /run/iam-pgbroker/pgbroker.sock).
The broker decides from the caller's OS identity and its policy what the
caller may do, and audits every statement.

    import iam_lib_pgconnect

    with iam_lib_pgconnect.connect() as db:
        print(db.query("SELECT count(*) AS total FROM idm_identity"))
"""

from . import approval, errors
from .connection import DEFAULT_SOCKET, SOCKET_ENV, IamDbConnection, connect
from .errors import *  # noqa: F401,F403 - the exception classes, as psycopg2 exports them

__version__ = "0.1.0"

__all__ = ["connect", "IamDbConnection", "approval", "errors", "DEFAULT_SOCKET", "SOCKET_ENV",
           "__version__"] + errors.__all__
