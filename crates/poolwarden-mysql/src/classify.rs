//! Mapping mysql_async errors onto the pool's [`ErrorClass`]es.
//!
//! mysql_async has no numeric client error codes: the libmysqlclient codes
//! 2006 (server has gone away), 2013 (lost connection during query) and 2055
//! (lost connection at a system call) arrive as [`Error::Io`] (EOF, broken
//! pipe, reset) or [`DriverError::ConnectionClosed`]; 2014 (commands out of
//! sync) arrives as [`DriverError::PacketOutOfOrder`] or as an
//! `io::Error` wrapping mysql_common's `PacketCodecError::PacketsOutOfSync`.
//! Server errors keep their numeric code in [`ServerError::code`].

use std::io;

use mysql_async::{DriverError, Error, IoError, ServerError};
use mysql_common::proto::codec::error::PacketCodecError;
use poolwarden::ErrorClass;

use crate::abort::{CommandCut, CutReason};
use crate::deadline::CommandTimeout;

/// Server error codes the classification cares about (MySQL and MariaDB
/// share the numbering below 3000; the higher ones are product-specific).
pub mod codes {
    /// `ER_CON_COUNT_ERROR`: too many connections (F9).
    pub const TOO_MANY_CONNECTIONS: u16 = 1040;
    /// `ER_HANDSHAKE_ERROR`: bad handshake.
    pub const BAD_HANDSHAKE: u16 = 1043;
    /// `ER_DBACCESS_DENIED_ERROR`: access denied to a database.
    pub const DB_ACCESS_DENIED: u16 = 1044;
    /// `ER_ACCESS_DENIED_ERROR`: bad user or password.
    pub const ACCESS_DENIED: u16 = 1045;
    /// `ER_BAD_DB_ERROR`: unknown database.
    pub const UNKNOWN_DATABASE: u16 = 1049;
    /// `ER_SERVER_SHUTDOWN`: server shutdown in progress.
    pub const SERVER_SHUTDOWN: u16 = 1053;
    /// `ER_DUP_ENTRY`: a unique key already has this value.
    pub const DUP_ENTRY: u16 = 1062;
    /// `ER_NO_SUCH_THREAD`: `KILL` of a session that no longer exists.
    pub const UNKNOWN_THREAD: u16 = 1094;
    /// `ER_HOST_IS_BLOCKED`: too many connection errors from this host.
    pub const HOST_IS_BLOCKED: u16 = 1129;
    /// `ER_HOST_NOT_PRIVILEGED`: this host may not connect.
    pub const HOST_NOT_PRIVILEGED: u16 = 1130;
    /// `ER_ABORTING_CONNECTION`.
    pub const ABORTING_CONNECTION: u16 = 1152;
    /// `ER_NET_READ_ERROR`.
    pub const NET_READ_ERROR: u16 = 1158;
    /// `ER_NET_READ_INTERRUPTED`.
    pub const NET_READ_INTERRUPTED: u16 = 1159;
    /// `ER_NET_ERROR_ON_WRITE`.
    pub const NET_ERROR_ON_WRITE: u16 = 1160;
    /// `ER_NET_WRITE_INTERRUPTED`.
    pub const NET_WRITE_INTERRUPTED: u16 = 1161;
    /// `ER_NEW_ABORTING_CONNECTION`.
    pub const NEW_ABORTING_CONNECTION: u16 = 1184;
    /// `ER_TOO_MANY_USER_CONNECTIONS`: `max_user_connections` reached.
    pub const TOO_MANY_USER_CONNECTIONS: u16 = 1203;
    /// `ER_LOCK_WAIT_TIMEOUT`.
    pub const LOCK_WAIT_TIMEOUT: u16 = 1205;
    /// `ER_LOCK_DEADLOCK`.
    pub const DEADLOCK: u16 = 1213;
    /// `ER_USER_LIMIT_REACHED`: a per-hour resource limit.
    pub const USER_LIMIT_REACHED: u16 = 1226;
    /// `ER_NOT_SUPPORTED_AUTH_MODE`: the client cannot do the auth plugin.
    pub const AUTH_MODE_NOT_SUPPORTED: u16 = 1251;
    /// `ER_WARN_DATA_OUT_OF_RANGE`: a value out of the column's range (an
    /// error in strict SQL mode).
    pub const DATA_OUT_OF_RANGE: u16 = 1264;
    /// `ER_QUERY_INTERRUPTED` (`KILL QUERY`, `max_statement_time`).
    pub const QUERY_INTERRUPTED: u16 = 1317;
    /// `ER_ROW_IS_REFERENCED_2`: a row other rows refer to (foreign key).
    pub const ROW_IS_REFERENCED: u16 = 1451;
    /// `ER_NO_REFERENCED_ROW_2`: the row a foreign key refers to is missing.
    pub const NO_REFERENCED_ROW: u16 = 1452;
    /// `ER_PLUGIN_IS_NOT_LOADED` (for example a missing auth plugin).
    pub const PLUGIN_NOT_LOADED: u16 = 1524;
    /// `ER_DATA_OUT_OF_RANGE`: an arithmetic result out of its type's range.
    pub const ARITHMETIC_OUT_OF_RANGE: u16 = 1690;
    /// `ER_ACCESS_DENIED_NO_PASSWORD_ERROR`: access denied (MariaDB also
    /// answers this for an unknown user, and for failed `unix_socket` auth).
    pub const ACCESS_DENIED_NO_PASSWORD: u16 = 1698;
    /// `ER_MUST_CHANGE_PASSWORD`.
    pub const MUST_CHANGE_PASSWORD: u16 = 1820;
    /// `ER_MUST_CHANGE_PASSWORD_LOGIN`.
    pub const MUST_CHANGE_PASSWORD_LOGIN: u16 = 1862;
    /// MariaDB `ER_CONNECTION_KILLED`: "Connection was killed".
    pub const CONNECTION_KILLED: u16 = 1927;
    /// MySQL `ER_ACCOUNT_HAS_BEEN_LOCKED`.
    pub const MYSQL_ACCOUNT_LOCKED: u16 = 3118;
    /// MySQL `ER_SECURE_TRANSPORT_REQUIRED`.
    pub const SECURE_TRANSPORT_REQUIRED: u16 = 3159;
    /// MySQL `ER_SESSION_WAS_KILLED`.
    pub const SESSION_WAS_KILLED: u16 = 3169;
    /// MySQL 8.0.24+ `ER_CLIENT_INTERACTION_TIMEOUT`: closed for inactivity.
    pub const CLIENT_INTERACTION_TIMEOUT: u16 = 4031;
    /// MariaDB `ER_ACCOUNT_HAS_BEEN_LOCKED`.
    pub const MARIADB_ACCOUNT_LOCKED: u16 = 4151;
}

/// The user's override: gets the error and the default class, returns the
/// class the pool should use.
pub type Classifier = dyn Fn(&Error, ErrorClass) -> ErrorClass + Send + Sync;

/// The default classification of a mysql_async error.
///
/// * [`ErrorClass::Disconnect`]: any socket I/O error (EOF, broken pipe,
///   reset, refused, timed out), [`DriverError::ConnectionClosed`], and the
///   server errors 1053, 1152, 1158-1161, 1184, 1927, 3169, 4031.
/// * [`ErrorClass::Usage`]: packets out of order / out of sync (the 2014
///   "commands out of sync" family).
/// * [`ErrorClass::Broken`]: other protocol damage, and client-side
///   statement errors that mysql_async raises inside a command (it closes the
///   socket after them, so the connection is gone).
/// * A [`CommandTimeout`] (a command that passed its deadline) is
///   [`ErrorClass::Broken`]: only its connection goes. Whether the *server*
///   stopped answering is not decided from one slow command: the manager
///   finds out itself (its `KILL` side connection gets no answer either)
///   and then black-holes the pool through its
///   [`ServerSignal`](poolwarden::ServerSignal), with or without this
///   error being reported. `Keep` for one that was not sent because its
///   deadline had already passed.
/// * A [`CommandCut`](crate::CommandCut) is [`ErrorClass::Disconnect`] when
///   its cluster node was marked down as unreachable (like the lost
///   connection it stands for; the cluster manager itself turns it into
///   `Broken` for the pool), [`ErrorClass::Broken`] when its pool closed.
/// * An [`OutcomeUnknown`](crate::OutcomeUnknown) has the class of its
///   cause.
/// * [`ErrorClass::Fatal`]: 1044, 1045, 1049, 1129, 1130, 1251, 1524, 1698,
///   1820, 1862, 3118, 3159, 4151, URL errors, TLS and authentication-plugin
///   configuration errors (F11).
/// * [`ErrorClass::Keep`]: every other server error, among them 1040 and
///   1203 (too many connections: the pool backs off, F9), 1205, 1213, 1317;
///   row and value conversion errors.
///
/// Note that 1044/1045/1049 are classified `Fatal` wherever they come from,
/// even from a `USE` on a live connection; a [`classify_with`] override can
/// refine that.
///
/// [`classify_with`]: crate::MySqlManager::classify_with
pub fn classify_error(error: &Error) -> ErrorClass {
    match crate::ambiguous::cause(error) {
        Error::Server(e) => classify_server(e),
        Error::Io(e) => classify_io(e),
        Error::Driver(e) => classify_driver(e),
        Error::Url(_) => ErrorClass::Fatal,
        Error::Other(e) if e.is::<CommandCut>() => match e.downcast_ref::<CommandCut>() {
            Some(CommandCut {
                reason: CutReason::NodeDown { .. },
                ..
            }) => ErrorClass::Disconnect,
            _ => ErrorClass::Broken,
        },
        Error::Other(e) => match e.downcast_ref::<CommandTimeout>() {
            // Not sent (its deadline had passed before): says nothing
            // about the server or the connection.
            Some(t) if !t.sent => ErrorClass::Keep,
            // Sent: this connection's protocol state is unknown. The
            // server's state is the manager's call (see above).
            _ => ErrorClass::Broken,
        },
    }
}

/// The class of a server error, by its code.
pub fn classify_server(error: &ServerError) -> ErrorClass {
    use codes::*;
    match error.code {
        SERVER_SHUTDOWN
        | ABORTING_CONNECTION
        | NET_READ_ERROR
        | NET_READ_INTERRUPTED
        | NET_ERROR_ON_WRITE
        | NET_WRITE_INTERRUPTED
        | NEW_ABORTING_CONNECTION
        | CONNECTION_KILLED
        | SESSION_WAS_KILLED
        | CLIENT_INTERACTION_TIMEOUT => ErrorClass::Disconnect,
        DB_ACCESS_DENIED
        | ACCESS_DENIED
        | UNKNOWN_DATABASE
        | HOST_IS_BLOCKED
        | HOST_NOT_PRIVILEGED
        | AUTH_MODE_NOT_SUPPORTED
        | PLUGIN_NOT_LOADED
        | ACCESS_DENIED_NO_PASSWORD
        | MUST_CHANGE_PASSWORD
        | MUST_CHANGE_PASSWORD_LOGIN
        | MYSQL_ACCOUNT_LOCKED
        | SECURE_TRANSPORT_REQUIRED
        | MARIADB_ACCOUNT_LOCKED => ErrorClass::Fatal,
        BAD_HANDSHAKE => ErrorClass::Broken,
        // 1040, 1203, 1205, 1213, 1226, 1317 and everything else.
        _ => ErrorClass::Keep,
    }
}

fn classify_io(error: &IoError) -> ErrorClass {
    #[allow(unreachable_patterns)] // the TLS variant exists only with a TLS feature
    match error {
        IoError::Io(e) => classify_socket(e),
        // A TLS failure: certificates, names, protocol versions (F11).
        _ => ErrorClass::Fatal,
    }
}

fn classify_socket(error: &io::Error) -> ErrorClass {
    if let Some(codec) = error
        .get_ref()
        .and_then(|inner| inner.downcast_ref::<PacketCodecError>())
    {
        return match codec {
            PacketCodecError::PacketsOutOfSync => ErrorClass::Usage,
            PacketCodecError::Io(inner) => classify_socket(inner),
            PacketCodecError::PacketTooLarge | PacketCodecError::BadCompressedPacketHeader => {
                ErrorClass::Broken
            }
        };
    }
    // mysql_async only returns `Error::Io` for the connection's own socket
    // (connect, read, write): any of them means the peer is unreachable or
    // gone (2003, 2006, 2013, 2055 in libmysqlclient terms).
    ErrorClass::Disconnect
}

fn classify_driver(error: &DriverError) -> ErrorClass {
    match error {
        DriverError::ConnectionClosed => ErrorClass::Disconnect,
        DriverError::PacketOutOfOrder => ErrorClass::Usage,
        DriverError::UnexpectedPacket { .. }
        | DriverError::PacketTooLarge
        | DriverError::BadCompressedPacketHeader => ErrorClass::Broken,
        DriverError::CantParseServerVersion { .. }
        | DriverError::UnknownAuthPlugin { .. }
        | DriverError::NamedPipesDisabled
        | DriverError::MysqlOldPasswordDisabled
        | DriverError::NoKeyFound
        | DriverError::NoClientSslFlagFromServer
        | DriverError::CleartextPluginDisabled
        | DriverError::InvalidParsecSalt => ErrorClass::Fatal,
        // Raised before anything is sent, or after the rows were read: the
        // connection is untouched.
        DriverError::FromValue { .. }
        | DriverError::FromRow { .. }
        | DriverError::NestedTransaction
        | DriverError::ReadOnlyTransNotSupported
        | DriverError::PoolDisconnected => ErrorClass::Keep,
        // Raised inside a command routine, which makes mysql_async close the
        // socket (`Conn::routine` treats every non-server error as fatal).
        DriverError::Params(_)
        | DriverError::MixedParams
        | DriverError::StmtParamsMismatch { .. }
        | DriverError::StmtParamsNumberExceedsLimit { .. }
        | DriverError::LocalInfile(_)
        | DriverError::BulkExecute(_) => ErrorClass::Broken,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use mysql_async::UrlError;

    fn server(code: u16) -> Error {
        Error::Server(ServerError {
            code,
            message: format!("error {code}"),
            state: "HY000".to_owned(),
        })
    }

    fn io(kind: io::ErrorKind) -> Error {
        Error::Io(IoError::Io(io::Error::new(kind, "test")))
    }

    #[test]
    fn server_disconnects() {
        for code in [1053, 1152, 1158, 1159, 1160, 1161, 1184, 1927, 3169, 4031] {
            assert_eq!(
                classify_error(&server(code)),
                ErrorClass::Disconnect,
                "{code}"
            );
        }
    }

    #[test]
    fn server_fatal_configuration() {
        for code in [
            1044, 1045, 1049, 1129, 1130, 1251, 1524, 1698, 1820, 1862, 3118, 3159, 4151,
        ] {
            assert_eq!(classify_error(&server(code)), ErrorClass::Fatal, "{code}");
        }
    }

    #[test]
    fn server_ordinary_errors_keep_the_connection() {
        // too many connections, user connections, lock wait, deadlock,
        // resource limit, interrupted, syntax, duplicate key, no such table.
        for code in [1040, 1203, 1205, 1213, 1226, 1317, 1064, 1062, 1146] {
            assert_eq!(classify_error(&server(code)), ErrorClass::Keep, "{code}");
        }
    }

    #[test]
    fn socket_errors_are_disconnects() {
        use io::ErrorKind::*;
        for kind in [
            UnexpectedEof,
            BrokenPipe,
            ConnectionReset,
            ConnectionAborted,
            ConnectionRefused,
            NotConnected,
            TimedOut,
        ] {
            assert_eq!(
                classify_error(&io(kind)),
                ErrorClass::Disconnect,
                "{kind:?}"
            );
        }
        assert_eq!(
            classify_error(&Error::Driver(DriverError::ConnectionClosed)),
            ErrorClass::Disconnect
        );
    }

    #[test]
    fn out_of_sync_is_usage() {
        let wrapped = Error::Io(IoError::Io(io::Error::other(
            PacketCodecError::PacketsOutOfSync,
        )));
        assert_eq!(classify_error(&wrapped), ErrorClass::Usage);
        // The same conversion mysql_async uses (`From<PacketCodecError>`).
        assert_eq!(
            classify_error(&Error::from(PacketCodecError::PacketsOutOfSync)),
            ErrorClass::Usage
        );
        assert_eq!(
            classify_error(&Error::Driver(DriverError::PacketOutOfOrder)),
            ErrorClass::Usage
        );
    }

    #[test]
    fn codec_damage_is_broken_and_codec_io_is_a_disconnect() {
        assert_eq!(
            classify_error(&Error::from(PacketCodecError::PacketTooLarge)),
            ErrorClass::Broken
        );
        assert_eq!(
            classify_error(&Error::from(PacketCodecError::BadCompressedPacketHeader)),
            ErrorClass::Broken
        );
        let eof = PacketCodecError::Io(io::Error::from(io::ErrorKind::UnexpectedEof));
        assert_eq!(classify_error(&Error::from(eof)), ErrorClass::Disconnect);
        assert_eq!(
            classify_error(&Error::Driver(DriverError::UnexpectedPacket {
                payload: vec![0xff]
            })),
            ErrorClass::Broken
        );
    }

    #[test]
    fn configuration_errors_are_fatal() {
        assert_eq!(
            classify_error(&Error::Url(UrlError::Invalid)),
            ErrorClass::Fatal
        );
        assert_eq!(
            classify_error(&Error::Driver(DriverError::UnknownAuthPlugin {
                name: "x".into()
            })),
            ErrorClass::Fatal
        );
        assert_eq!(
            classify_error(&Error::Driver(DriverError::NoClientSslFlagFromServer)),
            ErrorClass::Fatal
        );
    }

    #[test]
    fn client_side_usage_errors() {
        assert_eq!(
            classify_error(&Error::Driver(DriverError::NestedTransaction)),
            ErrorClass::Keep
        );
        assert_eq!(
            classify_error(&Error::Driver(DriverError::StmtParamsMismatch {
                required: 1,
                supplied: 2
            })),
            ErrorClass::Broken
        );
        assert_eq!(
            classify_error(&Error::Other("boom".into())),
            ErrorClass::Broken
        );
    }
}
