//! How a closing connection ends. Lingering close (nginx's `lingering_close`): a connection
//! that ends after an answer while the client may still be sending is half-closed, then read
//! and discarded until the client closes, so that its answer is not destroyed by the reset
//! that closing a socket with unread bytes sends. And over TLS, every end says close_notify.
//! Owns no answer and no decision to close.

use monoio::io::AsyncWriteRent;
use monoio::time::Instant;
use tracing::debug;

use super::guard::Closing;
use super::Conn;
use crate::config::Timeouts;
use crate::shard::Shard;
use crate::stream::CLOSE_NOTIFY_WAIT;

/// A lingering close ends after discarding this many bytes. What a client can have in flight
/// when it learns of the answer is about its send buffer plus ours (Linux's autotuning maxima:
/// tcp_wmem 4 MiB, tcp_rmem 6 MiB) plus what is on the wire; a client still sending past that
/// is not reading its answer, and reading more for it only spends bandwidth.
const LINGER_BYTES_MAX: u64 = 16 * 1024 * 1024;

/// Smallest read while discarding (the input buffer's usual capacity; it is not grown past).
const LINGER_READ_BYTES: usize = 4096;

impl Conn {
    /// The client may still be sending: the current request's body was not read in full, or
    /// bytes after it (a pipelined request, a refused head) are buffered.
    fn input_pending(&self) -> bool {
        self.body_unread || !self.inbuf.is_empty()
    }

    /// The answer about to be written is the connection's last: hold it so its FIN leaves
    /// with it (`Stream::hold_for_close`). Not when closing will reset the connection (input
    /// pending, and no lingering: coregate's own 408, or `client_linger_ms = 0`): a reset
    /// discards what the kernel still holds, where an answer already sent may yet be read.
    pub(crate) fn hold_last_answer(&self, timeouts: &Timeouts) {
        if self.input_pending() && (self.cut_off || timeouts.client_linger.is_zero()) {
            return;
        }
        self.stream.hold_for_close();
    }

    /// End the connection after an answer. When the client may still be sending — the current
    /// request's body was not read in full, or bytes after it (a pipelined request, a refused
    /// head) are buffered — shut the write side (TCP FIN; TLS close_notify then FIN) and
    /// discard what arrives until the client closes, `client_linger_idle` passes without a
    /// byte, `client_linger` passes in all, or `LINGER_BYTES_MAX` bytes were discarded.
    /// Otherwise (a complete request, nothing buffered: a plain `Connection: close`), return at
    /// once: the socket closes with nothing unread, which sends FIN, not a reset. A client cut
    /// off for slowness (`cut_off`: coregate's own 408 for its head or body) is not lingered
    /// for either, as nginx after its timeouts: lingering would give a slowloris its connection
    /// for `client_linger_ms` more. Any other answer lingers, a 408 from an upstream included.
    ///
    /// A lingering connection counts for graceful drain, so a shutdown waits for it only up to
    /// `drain_timeout_ms` (then the shard exits and the socket is closed as before).
    pub(super) async fn close(&mut self, shard: &Shard, timeouts: &Timeouts) {
        if !self.input_pending() || self.cut_off || timeouts.client_linger.is_zero() {
            return;
        }
        let _closing = Closing::new(shard);
        let end = Instant::now() + timeouts.client_linger;
        // A TLS close_notify is a write to a client that may not read: bounded like any write.
        let shut = self.stream.shutdown();
        if !matches!(
            self.timer.limit(timeouts.client_send, shut).await,
            Ok(Ok(()))
        ) {
            return;
        }
        self.inbuf.consume(self.inbuf.len());
        // Discard in place: the buffer is empty after every read, so it never grows.
        let read_bytes = self.inbuf.capacity().max(LINGER_READ_BYTES);
        let mut discarded: u64 = 0;
        while discarded < LINGER_BYTES_MAX {
            let quiet_end = end.min(Instant::now() + timeouts.client_linger_idle);
            let fill = self.inbuf.fill(&mut self.stream, read_bytes);
            match self.timer.limit_at(quiet_end, fill).await {
                Ok(Ok(n)) if n > 0 => {
                    discarded += n as u64;
                    self.inbuf.consume(n);
                }
                // The client closed (0), failed, went quiet, or the total time ran out.
                _ => break,
            }
        }
        debug!(peer = %self.peer, discarded, "lingering close ended");
    }

    /// The connection is over, whoever ended it: over TLS, send close_notify before the socket
    /// closes (RFC 8446 §6.1: each side MUST), so that the client can tell the end of the
    /// stream from a cut (RFC 9112 §9.8; a body that ends with the connection is otherwise
    /// indistinguishable from a truncated one, and strict clients report the bare FIN as an
    /// error). nginx and HAProxy send it too. Nothing to do where it was already sent (a
    /// lingering close), where a write was cancelled (the stream can no longer write), or on
    /// plain TCP. A drain waits for it (`Closing`).
    pub(super) async fn end(&mut self, shard: &Shard) {
        if self.stream.is_tls() {
            let _closing = Closing::new(shard);
            let shut = self.stream.shutdown();
            let _ = self.timer.limit(CLOSE_NOTIFY_WAIT, shut).await;
        }
    }
}
