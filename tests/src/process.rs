//! Child processes that cannot outlive the test, and the small waiting helpers around them.

use std::net::{TcpListener, TcpStream};
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

/// A free TCP port on 127.0.0.1. The port is released before returning, so a tiny race with
/// another process exists; servers started by this harness retry on a new port if they lose it.
pub fn free_port() -> u16 {
    let listener = TcpListener::bind("127.0.0.1:0").expect("binding 127.0.0.1:0 must work");
    listener
        .local_addr()
        .expect("a bound socket has an address")
        .port()
}

/// Finds `binary` on PATH (or at an absolute path) and panics with the install line if absent.
pub fn require(binary: &str, debian_package: &str) -> PathBuf {
    if binary.starts_with('/') {
        let p = PathBuf::from(binary);
        if p.exists() {
            return p;
        }
    } else if let Some(paths) = std::env::var_os("PATH") {
        for dir in std::env::split_paths(&paths) {
            let candidate = dir.join(binary);
            if candidate.is_file() {
                return candidate;
            }
        }
    }
    panic!(
        "`{binary}` is not installed; install it with: apt-get install -y {debian_package} \
         (or run scripts/test, which installs every test dependency)"
    );
}

/// Polls `cond` every 50 ms until it holds or `timeout` passes; returns whether it held.
pub fn wait_until(timeout: Duration, mut cond: impl FnMut() -> bool) -> bool {
    let start = Instant::now();
    loop {
        if cond() {
            return true;
        }
        if start.elapsed() > timeout {
            return false;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// True once something accepts TCP connections on 127.0.0.1:`port`.
pub fn port_open(port: u16) -> bool {
    TcpStream::connect_timeout(
        &std::net::SocketAddr::from(([127, 0, 0, 1], port)),
        Duration::from_millis(200),
    )
    .is_ok()
}

/// Plain blocking GET returning (status, body); panics only if the request cannot be sent.
pub fn http_get(url: &str) -> (u16, String) {
    let client = reqwest::blocking::Client::builder()
        .timeout(Duration::from_secs(30))
        .build()
        .expect("building a reqwest client must work");
    let resp = client
        .get(url)
        .send()
        .unwrap_or_else(|e| panic!("GET {url}: {e}"));
    let status = resp.status().as_u16();
    (status, resp.text().unwrap_or_default())
}

/// A child process killed (SIGKILL to its whole process group) when dropped.
pub struct Child {
    inner: std::process::Child,
    name: String,
    log: PathBuf,
}

/// Who a child runs as: the current user, or (when we are root) a named system user.
#[derive(Clone, Copy)]
pub enum RunAs {
    Me,
    /// uid/gid of a system user such as `postgres`.
    User(u32, u32),
}

impl RunAs {
    /// The `postgres` system user when we are root (PostgreSQL refuses to run as root).
    pub fn postgres_if_root() -> RunAs {
        // SAFETY: geteuid has no preconditions and cannot fail.
        if unsafe { libc::geteuid() } != 0 {
            return RunAs::Me;
        }
        let passwd = std::fs::read_to_string("/etc/passwd").unwrap_or_default();
        for line in passwd.lines() {
            let f: Vec<&str> = line.split(':').collect();
            if f.len() > 3
                && f[0] == "postgres"
                && let (Ok(uid), Ok(gid)) = (f[2].parse(), f[3].parse())
            {
                return RunAs::User(uid, gid);
            }
        }
        panic!(
            "running as root but there is no `postgres` system user; install it with: \
             apt-get install -y postgresql"
        );
    }

    /// Gives `path` to this user so the child can write there.
    pub fn own(&self, path: &Path) {
        if let RunAs::User(uid, gid) = *self {
            let c = std::ffi::CString::new(path.as_os_str().as_encoded_bytes())
                .expect("temp paths contain no NUL byte");
            // SAFETY: c is a valid NUL-terminated path for the duration of the call.
            let rc = unsafe { libc::chown(c.as_ptr(), uid, gid) };
            assert_eq!(rc, 0, "chown {} failed", path.display());
        }
    }
}

impl Child {
    /// Spawns `cmd` in its own process group with stdout/stderr appended to `log`.
    pub fn spawn(name: &str, mut cmd: Command, run_as: RunAs, log: &Path) -> Child {
        let out = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(log)
            .unwrap_or_else(|e| panic!("open log {}: {e}", log.display()));
        let err = out.try_clone().expect("cloning a file handle must work");
        cmd.stdin(Stdio::null()).stdout(out).stderr(err);
        cmd.process_group(0);
        if let RunAs::User(uid, gid) = run_as {
            cmd.uid(uid).gid(gid);
        }
        // SAFETY: prctl and getppid are async-signal-safe; nothing else runs in the closure.
        unsafe {
            cmd.pre_exec(|| {
                libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL);
                Ok(())
            });
        }
        let inner = cmd
            .spawn()
            .unwrap_or_else(|e| panic!("starting {name}: {e}"));
        Child {
            inner,
            name: name.to_string(),
            log: log.to_path_buf(),
        }
    }

    pub fn pid(&self) -> i32 {
        self.inner.id() as i32
    }

    /// The child's log so far, for panic messages.
    pub fn log_tail(&self) -> String {
        let text = std::fs::read_to_string(&self.log).unwrap_or_default();
        let lines: Vec<&str> = text.lines().collect();
        lines[lines.len().saturating_sub(40)..].join("\n")
    }

    /// Panics with the log if the child has exited.
    pub fn assert_running(&mut self) {
        if let Ok(Some(status)) = self.inner.try_wait() {
            panic!(
                "{} exited early ({status}); its log:\n{}",
                self.name,
                self.log_tail()
            );
        }
    }

    /// Sends `sig` to the child's whole process group.
    pub fn signal(&self, sig: i32) {
        // SAFETY: kill with a negative pid signals a process group we created.
        unsafe {
            libc::kill(-self.pid(), sig);
        }
    }

    /// Sends `sig` to the child process alone (not its group).
    pub fn signal_main(&self, sig: i32) {
        // SAFETY: kill on the pid of a child we spawned and have not reaped.
        unsafe {
            libc::kill(self.pid(), sig);
        }
    }

    /// SIGTERM, then SIGKILL after `grace`; waits for the exit.
    pub fn stop(&mut self, grace: Duration) -> Option<std::process::ExitStatus> {
        if let Ok(Some(status)) = self.inner.try_wait() {
            return Some(status);
        }
        self.signal(libc::SIGCONT);
        self.signal(libc::SIGTERM);
        let start = Instant::now();
        while start.elapsed() < grace {
            if let Ok(Some(status)) = self.inner.try_wait() {
                self.signal(libc::SIGKILL);
                return Some(status);
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        self.signal(libc::SIGKILL);
        self.inner.wait().ok()
    }

    /// Waits up to `timeout` for the child to exit by itself.
    pub fn wait_exit(&mut self, timeout: Duration) -> Option<std::process::ExitStatus> {
        let start = Instant::now();
        while start.elapsed() < timeout {
            if let Ok(Some(status)) = self.inner.try_wait() {
                return Some(status);
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        None
    }
}

impl Drop for Child {
    fn drop(&mut self) {
        self.signal(libc::SIGCONT);
        self.signal(libc::SIGKILL);
        let _ = self.inner.wait();
    }
}
