//! RFC 5424 messages over TLS (RFC 5425), TCP (RFC 6587 octet counting) or a local datagram
//! socket, reconnected with growing pauses.

use std::sync::Arc;
use std::time::{Duration, Instant};

use futures::FutureExt as _;
use rustls_pki_types::ServerName;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::{TcpStream, UnixDatagram};

use super::AuditRow;
use crate::config::{AuditConfig, SyslogTarget};
use crate::domain::audit::Outcome;
use crate::domain::store::AuditRecord;
use crate::store::Store;

/// The cursor's name in `forward_cursors`.
const CURSOR: &str = "syslog";
/// authpriv (RFC 5424 facility 10): the rows name accounts and client addresses, which syslog
/// daemons keep in a file only root reads when it comes under this facility.
const FACILITY: u8 = 10;
const INFO: u8 = 6;
const NOTICE: u8 = 5;
/// Rows read and sent at once; the cursor moves after each batch.
const BATCH: i64 = 200;
/// How often the table is looked at when nothing is new.
const POLL: Duration = Duration::from_secs(1);
const FIRST_PAUSE: Duration = Duration::from_secs(1);
const MAX_PAUSE: Duration = Duration::from_secs(60);
/// A missing id below newer rows is usually an insert not yet committed (PostgreSQL hands out
/// ids before commit); after this long it is taken for a rolled-back or pruned row and skipped.
const GAP_WAIT: Duration = Duration::from_secs(10);

/// The RFC 5424 message for one audit row (without transport framing).
pub fn message(record: &AuditRecord, hostname: &str) -> String {
    let e = &record.event;
    let severity = match e.outcome {
        Outcome::Failure | Outcome::Denied | Outcome::Unknown => NOTICE,
        _ => INFO,
    };
    let pri = FACILITY * 8 + severity;
    let time = humantime::format_rfc3339_millis(e.at.to_system_time());
    let json = serde_json::to_string(&AuditRow::new(record)).unwrap_or_default();
    format!(
        "<{pri}>1 {time} {hostname} sspr-bridge {} {} - {json}",
        std::process::id(),
        e.event.as_str(),
    )
}

/// RFC 5424 HOSTNAME: printable ASCII, at most 255 characters, or the NILVALUE.
fn hostname() -> String {
    let name = std::fs::read_to_string("/proc/sys/kernel/hostname").unwrap_or_default();
    let name = name.trim();
    if name.is_empty() || name.len() > 255 || !name.bytes().all(|b| b.is_ascii_graphic()) {
        "-".to_owned()
    } else {
        name.to_owned()
    }
}

trait Stream: AsyncRead + AsyncWrite + Unpin + Send {}
impl<T: AsyncRead + AsyncWrite + Unpin + Send> Stream for T {}

enum Connection {
    /// TCP or TLS: octet-counted frames.
    Stream(Box<dyn Stream>),
    Datagram(UnixDatagram),
}

impl Connection {
    /// Whether the server has closed the connection. A syslog server never writes to us, so
    /// anything readable at once (an end of stream, an error) means it is gone; without this a
    /// batch written into a closed socket's buffer would be counted as sent.
    fn closed(&mut self) -> bool {
        match self {
            Self::Stream(stream) => {
                let mut byte = [0u8; 1];
                matches!(stream.read(&mut byte).now_or_never(), Some(Ok(0) | Err(_)))
            }
            Self::Datagram(_) => false,
        }
    }

    async fn send(&mut self, message: &str) -> std::io::Result<()> {
        match self {
            Self::Stream(stream) => {
                let frame = format!("{} {message}", message.len());
                stream.write_all(frame.as_bytes()).await
            }
            Self::Datagram(socket) => socket.send(message.as_bytes()).await.map(|_| ()),
        }
    }

    async fn flush(&mut self) -> std::io::Result<()> {
        match self {
            Self::Stream(stream) => stream.flush().await,
            Self::Datagram(_) => Ok(()),
        }
    }
}

/// Sends the audit log to `audit.syslog`, once spawned.
pub struct SyslogForwarder {
    target: SyslogTarget,
    tls: Option<Arc<rustls::ClientConfig>>,
    store: Store,
    hostname: String,
}

struct Position {
    last_id: i64,
    /// The first missing id above `last_id` and when it was first seen missing.
    gap: Option<(i64, Instant)>,
}

impl SyslogForwarder {
    /// `None` when `audit.syslog` is empty. Err: the CA file does not load.
    pub fn new(config: &AuditConfig, store: Store) -> Result<Option<Self>, String> {
        let Some(target) = config.syslog.clone() else {
            return Ok(None);
        };
        let tls = match target {
            SyslogTarget::Tls { .. } => {
                Some(crate::tls::client_config(config.syslog_ca_file.as_deref())?)
            }
            _ => None,
        };
        Ok(Some(Self {
            target,
            tls,
            store,
            hostname: hostname(),
        }))
    }

    /// Starts forwarding. The place to start from is read (or, the first time, set) before this
    /// returns, so every row written after it is forwarded; if the database does not answer now,
    /// the task tries again.
    pub async fn spawn(self) -> tokio::task::JoinHandle<()> {
        let start = match self.start().await {
            Ok(last_id) => Some(Position { last_id, gap: None }),
            Err(e) => {
                tracing::warn!(error = %e, "syslog forwarding cannot read its place yet; will retry");
                None
            }
        };
        tokio::spawn(async move {
            let mut position = start;
            let mut connection = None;
            let mut pause = FIRST_PAUSE;
            loop {
                match self.round(&mut position, &mut connection).await {
                    Ok(sent) => {
                        pause = FIRST_PAUSE;
                        if sent == 0 {
                            tokio::time::sleep(POLL).await;
                        }
                    }
                    Err(e) => {
                        tracing::warn!(error = %e, retry_in = ?pause, "audit rows not sent to syslog; will retry");
                        connection = None;
                        tokio::time::sleep(pause).await;
                        pause = (pause * 2).min(MAX_PAUSE);
                    }
                }
            }
        })
    }

    /// Sends the next batch; how many rows it sent.
    async fn round(
        &self,
        position: &mut Option<Position>,
        connection: &mut Option<Connection>,
    ) -> Result<usize, String> {
        let position = match position {
            Some(p) => p,
            None => position.insert(Position {
                last_id: self.start().await.map_err(|e| e.to_string())?,
                gap: None,
            }),
        };
        let rows = self
            .store
            .audit_after_id(position.last_id, BATCH)
            .await
            .map_err(|e| e.to_string())?;
        let ready = ready_rows(&rows, position);
        if ready == 0 {
            return Ok(0);
        }
        if connection.as_mut().is_some_and(Connection::closed) {
            *connection = None;
        }
        let conn = match connection {
            Some(c) => c,
            None => connection.insert(self.connect().await?),
        };
        for record in &rows[..ready] {
            conn.send(&message(record, &self.hostname))
                .await
                .map_err(|e| format!("cannot write to syslog: {e}"))?;
        }
        conn.flush()
            .await
            .map_err(|e| format!("cannot write to syslog: {e}"))?;
        let last = rows[ready - 1].id;
        self.store
            .set_forward_cursor(CURSOR, last)
            .await
            .map_err(|e| e.to_string())?;
        position.last_id = last;
        Ok(ready)
    }

    /// Where a forwarder starts: where it stopped, or (the first time) after the newest row, so
    /// enabling it does not send the whole history.
    async fn start(&self) -> Result<i64, crate::domain::store::StoreError> {
        if let Some(last) = self.store.forward_cursor(CURSOR).await? {
            return Ok(last);
        }
        let last = self.store.last_audit_id().await?;
        self.store.set_forward_cursor(CURSOR, last).await?;
        Ok(last)
    }

    async fn connect(&self) -> Result<Connection, String> {
        match &self.target {
            SyslogTarget::Tcp { host, port } => {
                let tcp = TcpStream::connect((host.as_str(), *port))
                    .await
                    .map_err(|e| format!("cannot connect to {host}:{port}: {e}"))?;
                Ok(Connection::Stream(Box::new(tcp)))
            }
            SyslogTarget::Tls { host, port } => {
                let tcp = TcpStream::connect((host.as_str(), *port))
                    .await
                    .map_err(|e| format!("cannot connect to {host}:{port}: {e}"))?;
                let name = ServerName::try_from(host.clone())
                    .map_err(|e| format!("bad host {host}: {e}"))?;
                let config = self.tls.clone().ok_or("no TLS configuration")?;
                let tls = tokio_rustls::TlsConnector::from(config)
                    .connect(name, tcp)
                    .await
                    .map_err(|e| match crate::tls::tls_failure(&e) {
                        Some(why) => format!("TLS to {host}:{port}: {why}"),
                        None => format!("TLS to {host}:{port}: {e}"),
                    })?;
                Ok(Connection::Stream(Box::new(tls)))
            }
            SyslogTarget::Unix(path) => {
                let socket = UnixDatagram::unbound().map_err(|e| e.to_string())?;
                socket
                    .connect(path)
                    .map_err(|e| format!("cannot connect to {}: {e}", path.display()))?;
                Ok(Connection::Datagram(socket))
            }
        }
    }
}

/// How many of `rows` (in id order, all above `position.last_id`) may be sent now: all of them
/// up to the first missing id, and past it once it has been missing for [`GAP_WAIT`].
fn ready_rows(rows: &[AuditRecord], position: &mut Position) -> usize {
    let first_missing = rows
        .iter()
        .zip(position.last_id + 1..)
        .position(|(record, expected)| record.id != expected);
    let Some(i) = first_missing else {
        return rows.len();
    };
    let expected = position.last_id + 1 + i as i64;
    match position.gap {
        Some((id, since)) if id == expected && since.elapsed() >= GAP_WAIT => return rows.len(),
        Some((id, _)) if id == expected => {}
        _ => position.gap = Some((expected, Instant::now())),
    }
    i
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::clock::Timestamp;
    use crate::domain::store::{AuditEvent, AuditKind};

    fn record(id: i64) -> AuditRecord {
        AuditRecord {
            id,
            event: AuditEvent {
                at: Timestamp::from_millis(1_793_491_200_123),
                event: AuditKind::PasswordReset,
                outcome: Outcome::Failure,
                object_guid: None,
                sam_account_name: Some("jdoe".to_owned()),
                actor: None,
                client_ip: Some("192.0.2.1".to_owned()),
                method: None,
                reason: Some("password_policy".to_owned()),
                login_hash: None,
            },
        }
    }

    #[test]
    fn a_message_is_rfc_5424_with_the_row_as_json() {
        let text = message(&record(7), "host1");
        let prefix = format!(
            "<85>1 2026-11-01T00:00:00.123Z host1 sspr-bridge {} password_reset - ",
            std::process::id()
        );
        assert!(text.starts_with(&prefix), "{text}");
        let json: serde_json::Value = serde_json::from_str(&text[prefix.len()..]).unwrap();
        assert_eq!(json["id"], 7);
        assert_eq!(json["event"], "password_reset");
        assert_eq!(json["outcome"], "failure");
        assert_eq!(json["sam_account_name"], "jdoe");
    }

    #[test]
    fn rows_wait_at_a_missing_id_and_pass_it_in_time() {
        let mut position = Position {
            last_id: 4,
            gap: None,
        };
        let rows = [record(5), record(6), record(8)];
        assert_eq!(ready_rows(&rows, &mut position), 2);
        position.last_id = 6;
        let rows = [record(8)];
        assert_eq!(ready_rows(&rows, &mut position), 0);
        let (id, _) = position.gap.unwrap();
        assert_eq!(id, 7);
        position.gap = Some((7, Instant::now() - GAP_WAIT));
        assert_eq!(ready_rows(&rows, &mut position), 1);
    }
}
