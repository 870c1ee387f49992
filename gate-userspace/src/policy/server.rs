//! The policy server on tokio: a UNIX socket Postfix's chrooted smtpd can
//! reach (owner and mode set for user postfix) and optionally loopback TCP.
//!
//! Every connection is bounded: one request at a time of at most
//! `max_request_bytes`, a started request must finish within
//! `request_timeout`, a reply the client does not take within
//! `write_timeout` closes that connection; a malformed request is answered
//! with a deferral and the connection closed. Nothing a client does holds
//! the trust state or another connection.

use std::future::Future;
use std::io;
use std::os::unix::fs::{FileTypeExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::task::Poll;
use std::time::{Duration, SystemTime};

use tokio::io::{AsyncBufRead, AsyncBufReadExt, AsyncRead, AsyncWrite, AsyncWriteExt, BufReader};
use tokio::net::{TcpListener, UnixListener};
use tokio::sync::{watch, Semaphore};
use tokio::time::error::Elapsed;
use tokio::time::{timeout, timeout_at, Instant};
use tracing::{debug, info, warn};

use crate::model::config::PolicySection;

use super::counters::Counters;
use super::recipients::RecipientLog;
use super::request::{Limits, RequestBuilder};
use super::trust::TrustCell;
use super::verdict::{judge_wire, Counted, Reply, Tally, VerdictSettings};

/// Transactions whose per-recipient results wait for DATA (about 1 KiB each).
const MAX_TRANSACTIONS: usize = 100_000;

/// Why the server could not listen; each names the key to fix.
#[derive(Debug, thiserror::Error)]
pub enum ServeError {
    #[error("policy.socket = {path:?}: {problem}")]
    Socket { path: PathBuf, problem: String },
    #[error("policy.{key} = {value:?}: {problem}")]
    Owner {
        key: &'static str,
        value: String,
        problem: String,
    },
    #[error("policy.tcp_listen = \"{addr}\": cannot listen: {error}")]
    Tcp {
        addr: std::net::SocketAddr,
        error: io::Error,
    },
}

/// Everything a connection needs, shared.
#[derive(Debug)]
pub struct Context {
    pub cell: Arc<TrustCell>,
    pub settings: VerdictSettings,
    pub limits: Limits,
    pub request_timeout: Duration,
    pub idle_timeout: Duration,
    pub write_timeout: Duration,
    pub connections: Arc<Semaphore>,
    /// Per-recipient results between RCPT and DATA.
    pub recipients: RecipientLog,
    /// Requests, verdicts and connections, for `/metrics`.
    pub counters: Arc<Counters>,
}

impl Context {
    pub fn new(
        section: &PolicySection,
        settings: VerdictSettings,
        cell: Arc<TrustCell>,
    ) -> Arc<Context> {
        Arc::new(Context {
            cell,
            settings,
            limits: Limits {
                max_request_bytes: section.max_request_bytes,
                max_attributes: section.max_attributes,
            },
            request_timeout: section.request_timeout,
            idle_timeout: section.idle_timeout,
            write_timeout: section.write_timeout,
            connections: Arc::new(Semaphore::new(section.max_connections)),
            recipients: RecipientLog::new(MAX_TRANSACTIONS),
            counters: Arc::new(Counters::default()),
        })
    }
}

/// Resolves a user or group name (or a number) to its id.
fn lookup_id(key: &'static str, value: &str, group: bool) -> Result<u32, ServeError> {
    if let Ok(n) = value.parse::<u32>() {
        return Ok(n);
    }
    let err = |problem: &str| ServeError::Owner {
        key,
        value: value.into(),
        problem: problem.into(),
    };
    let name = std::ffi::CString::new(value).map_err(|_| err("contains a NUL byte"))?;
    let mut buf = vec![0 as libc::c_char; 16 * 1024];
    // SAFETY: getpwnam_r/getgrnam_r write into the buffers we own and set
    // `res` to null or to `pw`/`gr`; both outlive the calls.
    unsafe {
        if group {
            let mut gr: libc::group = std::mem::zeroed();
            let mut res: *mut libc::group = std::ptr::null_mut();
            let rc = libc::getgrnam_r(
                name.as_ptr(),
                &mut gr,
                buf.as_mut_ptr(),
                buf.len(),
                &mut res,
            );
            if rc != 0 || res.is_null() {
                return Err(err("no such group on this host"));
            }
            Ok(gr.gr_gid)
        } else {
            let mut pw: libc::passwd = std::mem::zeroed();
            let mut res: *mut libc::passwd = std::ptr::null_mut();
            let rc = libc::getpwnam_r(
                name.as_ptr(),
                &mut pw,
                buf.as_mut_ptr(),
                buf.len(),
                &mut res,
            );
            if rc != 0 || res.is_null() {
                return Err(err("no such user on this host (is Postfix installed?)"));
            }
            Ok(pw.pw_uid)
        }
    }
}

/// Binds the UNIX socket: a stale socket left by a dead server is replaced,
/// a live one or any other file is an error; then owner, group and mode.
pub fn bind_unix(s: &PolicySection, path: &Path) -> Result<UnixListener, ServeError> {
    let sock_err = |problem: String| ServeError::Socket {
        path: path.to_path_buf(),
        problem,
    };
    let owner = s
        .socket_owner
        .as_deref()
        .map(|o| lookup_id("socket_owner", o, false))
        .transpose()?;
    let group = s
        .socket_group
        .as_deref()
        .map(|g| lookup_id("socket_group", g, true))
        .transpose()?;
    if let Ok(meta) = std::fs::symlink_metadata(path) {
        if !meta.file_type().is_socket() {
            return Err(sock_err(
                "exists and is not a socket; not touching it".into(),
            ));
        }
        if std::os::unix::net::UnixStream::connect(path).is_ok() {
            return Err(sock_err(
                "another server answers on it (a second wotgate?)".into(),
            ));
        }
        std::fs::remove_file(path)
            .map_err(|e| sock_err(format!("cannot remove the stale socket: {e}")))?;
    }
    let std_listener = std::os::unix::net::UnixListener::bind(path).map_err(|e| {
        let hint = if e.kind() == io::ErrorKind::NotFound {
            " (does its directory exist? Postfix creates private/ in its queue directory)"
        } else {
            ""
        };
        sock_err(format!("cannot listen: {e}{hint}"))
    })?;
    if owner.is_some() || group.is_some() {
        std::os::unix::fs::chown(path, owner, group).map_err(|e| {
            sock_err(format!(
                "cannot give it to policy.socket_owner/socket_group: {e}"
            ))
        })?;
    }
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(s.socket_mode))
        .map_err(|e| sock_err(format!("cannot set policy.socket_mode: {e}")))?;
    std_listener
        .set_nonblocking(true)
        .map_err(|e| sock_err(e.to_string()))?;
    UnixListener::from_std(std_listener).map_err(|e| sock_err(e.to_string()))
}

/// Raises the soft limit of open files to the hard limit (many Postfix
/// processes each hold a connection); a failure only costs capacity.
pub fn raise_nofile_limit() {
    // SAFETY: plain getrlimit/setrlimit on a struct we own.
    unsafe {
        let mut r: libc::rlimit = std::mem::zeroed();
        if libc::getrlimit(libc::RLIMIT_NOFILE, &mut r) == 0 && r.rlim_cur < r.rlim_max {
            r.rlim_cur = r.rlim_max;
            let _ = libc::setrlimit(libc::RLIMIT_NOFILE, &r);
        }
    }
}

/// The running listeners; dropping it does not stop them, [`Running::stop`] does.
pub struct Running {
    stop: watch::Sender<bool>,
    socket: Option<PathBuf>,
    counters: Arc<Counters>,
}

impl Running {
    /// The server's counters (for `/metrics`).
    pub fn counters(&self) -> Arc<Counters> {
        self.counters.clone()
    }

    /// Stops accepting and removes the socket file (open connections end
    /// with the process).
    pub fn stop(self) {
        let _ = self.stop.send(true);
        if let Some(p) = &self.socket {
            let _ = std::fs::remove_file(p);
        }
    }
}

/// Binds what `[policy]` names and serves on the current tokio runtime.
pub async fn start(s: &PolicySection, ctx: Arc<Context>) -> Result<Running, ServeError> {
    raise_nofile_limit();
    let counters = ctx.counters.clone();
    let (stop, rx) = watch::channel(false);
    if let Some(path) = &s.socket {
        let l = bind_unix(s, path)?;
        info!(socket = %path.display(), mode = format!("{:o}", s.socket_mode), "policy server listening");
        tokio::spawn(accept_loop(Listener::Unix(l), ctx.clone(), rx.clone()));
    }
    if let Some(addr) = s.tcp_listen {
        let l = TcpListener::bind(addr)
            .await
            .map_err(|error| ServeError::Tcp { addr, error })?;
        info!(listen = %addr, "policy server listening on loopback TCP");
        tokio::spawn(accept_loop(Listener::Tcp(l), ctx, rx));
    }
    Ok(Running {
        stop,
        socket: s.socket.clone(),
        counters,
    })
}

pub enum Listener {
    Unix(UnixListener),
    Tcp(TcpListener),
}

/// Accepts until `stop`; beyond `max_connections` a new connection is
/// closed at once (Postfix retries, then applies its default_action).
pub async fn accept_loop(l: Listener, ctx: Arc<Context>, mut stop: watch::Receiver<bool>) {
    let mut refused: u64 = 0;
    loop {
        let accepted = tokio::select! {
            _ = stop.changed() => return,
            a = accept(&l) => a,
        };
        let conn = match accepted {
            Ok(c) => c,
            Err(e) => {
                // EMFILE and the like: back off instead of spinning.
                warn!(error = %e, "policy server: accept failed");
                tokio::time::sleep(Duration::from_millis(50)).await;
                continue;
            }
        };
        let Ok(permit) = ctx.connections.clone().try_acquire_owned() else {
            ctx.counters.refuse();
            refused += 1;
            if refused.is_power_of_two() {
                warn!(
                    refused,
                    "policy server: policy.max_connections reached; closing new connections"
                );
            }
            continue;
        };
        let ctx = ctx.clone();
        tokio::spawn(async move {
            let _open = ctx.counters.open();
            match conn {
                Conn::Unix(s) => serve_connection(s, &ctx).await,
                Conn::Tcp(s) => serve_connection(s, &ctx).await,
            }
            drop(permit);
        });
    }
}

enum Conn {
    Unix(tokio::net::UnixStream),
    Tcp(tokio::net::TcpStream),
}

async fn accept(l: &Listener) -> io::Result<Conn> {
    Ok(match l {
        Listener::Unix(l) => Conn::Unix(l.accept().await?.0),
        Listener::Tcp(l) => Conn::Tcp(l.accept().await?.0),
    })
}

/// What reading one request ended with.
enum Next {
    Request(super::request::Request),
    Malformed(super::request::RequestError),
    Closed,
}

/// Reads the lines of one request from the reader's buffer, never keeping
/// more of a line than the rest of the request's byte limit.
async fn read_request<R: AsyncBufRead + Unpin>(
    rd: &mut R,
    max: usize,
    builder: &mut RequestBuilder,
    line: &mut Vec<u8>,
) -> Next {
    line.clear();
    loop {
        let buf = match rd.fill_buf().await {
            Ok(b) if !b.is_empty() => b,
            // EOF (inside a request: nothing to answer) or an error.
            _ => return Next::Closed,
        };
        let (used, pushed) = match buf.iter().position(|&c| c == b'\n') {
            // A whole line: parsed where it lies unless it began earlier.
            Some(i) if line.is_empty() => (i + 1, Some(builder.push_line(&buf[..=i]))),
            Some(i) => {
                line.extend_from_slice(&buf[..=i]);
                let r = builder.push_line(line);
                line.clear();
                (i + 1, Some(r))
            }
            // Part of a line: kept up to one byte over what the request
            // may still take, which the builder refuses.
            None => {
                let room = (max - builder.bytes() + 1).saturating_sub(line.len());
                let take = buf.len().min(room);
                line.extend_from_slice(&buf[..take]);
                let over = line.len() > max - builder.bytes();
                (take, over.then(|| builder.push_line(line)))
            }
        };
        rd.consume(used);
        match pushed {
            None | Some(Ok(None)) => {}
            Some(Ok(Some(r))) => return Next::Request(r),
            Some(Err(e)) => return Next::Malformed(e),
        }
    }
}

/// `fut` within `limit`: polled once first, so what is ready at once (the
/// usual case: the whole request already buffered, a reply the socket
/// takes) never sets up a timer; otherwise the limit counts from here.
async fn within<F: Future>(limit: Duration, fut: F) -> Result<F::Output, Elapsed> {
    let mut fut = std::pin::pin!(fut);
    let first = std::future::poll_fn(|cx| Poll::Ready(fut.as_mut().poll(cx))).await;
    match first {
        Poll::Ready(v) => Ok(v),
        Poll::Pending => timeout_at(Instant::now() + limit, fut).await,
    }
}

/// Answers requests on one connection until EOF, a timeout or an error.
pub async fn serve_connection<S: AsyncRead + AsyncWrite + Unpin>(stream: S, ctx: &Context) {
    // One request at a time, so reads and writes never overlap: the buffered
    // reader writes straight through to the stream (no split, no lock).
    let mut rd = BufReader::with_capacity(4096, stream);
    let mut builder = RequestBuilder::new(ctx.limits);
    let mut line = Vec::with_capacity(512);
    let mut out = Vec::with_capacity(512);
    // One idle timer per connection, moved at most once a second: a timer
    // per request costs more than the request (the deadline may come up to
    // a second early, which an idle timeout of minutes does not notice).
    let idle = tokio::time::sleep(ctx.idle_timeout);
    tokio::pin!(idle);
    loop {
        // Between requests: wait for the first byte of the next one.
        let now = Instant::now();
        if idle.deadline() + Duration::from_secs(1) < now + ctx.idle_timeout {
            idle.as_mut().reset(now + ctx.idle_timeout);
        }
        tokio::select! {
            biased;
            r = rd.fill_buf() => match r {
                Ok(buf) if !buf.is_empty() => {}
                _ => return, // EOF (normal between requests) or an error
            },
            _ = &mut idle => return, // Postfix reconnects when it needs us
        }
        let max = ctx.limits.max_request_bytes;
        let reading = read_request(&mut rd, max, &mut builder, &mut line);
        out.clear();
        match within(ctx.request_timeout, reading).await {
            Err(_) => {
                debug!("policy connection: request not completed within policy.request_timeout; closing");
                return;
            }
            Ok(Next::Closed) => return,
            Ok(Next::Malformed(e)) => {
                debug!(error = %e, "policy connection: malformed request; deferring and closing");
                let r = Reply::Defer(format!("wotgate: malformed policy request: {e}"));
                ctx.counters.record(&Tally {
                    verdict: Counted::Defer,
                    ..Tally::default()
                });
                let _ = timeout(ctx.write_timeout, rd.write_all(r.to_wire().as_bytes())).await;
                return;
            }
            Ok(Next::Request(req)) => {
                let mut tally = Tally::default();
                let now = SystemTime::now();
                ctx.cell.with(|snap| {
                    judge_wire(
                        &req,
                        snap,
                        now,
                        &ctx.settings,
                        &ctx.recipients,
                        &mut out,
                        &mut tally,
                    )
                });
                ctx.counters.record(&tally);
                builder.recycle(req);
            }
        }
        match within(ctx.write_timeout, rd.write_all(&out)).await {
            Ok(Ok(())) => {}
            _ => {
                debug!("policy connection: reply not taken within policy.write_timeout; closing");
                return;
            }
        }
    }
}
