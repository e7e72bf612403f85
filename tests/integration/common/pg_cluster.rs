//! A throwaway PostgreSQL cluster (initdb into a temporary directory, its own port) that a test may stop, start
//! and restart: the machine's server is shared by every test and must stay up.

use std::path::PathBuf;
use std::process::Command;
use std::time::{Duration, Instant};

/// How a restart stops the server: `fast` rolls back open transactions and closes connections; `immediate`
/// kills the server processes, and the next start runs crash recovery.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Stop {
    Fast,
    Immediate,
}

impl Stop {
    fn mode(self) -> &'static str {
        match self {
            Stop::Fast => "fast",
            Stop::Immediate => "immediate",
        }
    }
}

/// The cluster; stopped and deleted when dropped.
pub struct ThrowawayPg {
    pub port: u16,
    dir: PathBuf,
    bin: PathBuf,
    /// The superuser's password, when the cluster checks passwords over TCP.
    password: Option<&'static str>,
}

/// The superuser's password of [`ThrowawayPg::start_checking_passwords`].
const SUPERUSER_PASSWORD: &str = "throwaway-superuser";

/// The PostgreSQL server binaries (Debian's layout; PG_BIN overrides).
fn bin_dir() -> PathBuf {
    if let Ok(dir) = std::env::var("PG_BIN") {
        return dir.into();
    }
    let mut versions: Vec<PathBuf> = std::fs::read_dir("/usr/lib/postgresql")
        .expect("PostgreSQL server binaries under /usr/lib/postgresql (or set PG_BIN)")
        .filter_map(|e| e.ok().map(|e| e.path().join("bin")))
        .filter(|p| p.join("initdb").exists())
        .collect();
    versions.sort();
    versions.pop().expect("an initdb under /usr/lib/postgresql")
}

fn is_root() -> bool {
    Command::new("id")
        .arg("-u")
        .output()
        .map(|o| o.stdout.starts_with(b"0\n"))
        .unwrap_or(false)
}

impl ThrowawayPg {
    /// initdb and start on a free loopback port (as user postgres when run as root: initdb refuses root).
    pub fn start() -> Self {
        Self::init(None)
    }

    /// The same, checking passwords over TCP (scram-sha-256), as production servers do; [`url`](Self::url)
    /// carries the superuser's.
    pub fn start_checking_passwords() -> Self {
        Self::init(Some(SUPERUSER_PASSWORD))
    }

    fn init(password: Option<&'static str>) -> Self {
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .expect("free port")
            .port();
        let dir = std::env::temp_dir().join(format!("ss3-pg-{}", uuid::Uuid::new_v4().simple()));
        std::fs::create_dir_all(&dir).expect("cluster directory");
        if is_root() {
            let ok = Command::new("chown")
                .args(["postgres:postgres", &dir.to_string_lossy()])
                .status()
                .map(|s| s.success())
                .unwrap_or(false);
            assert!(ok, "chown the cluster directory to postgres");
        }
        let pg = Self {
            port,
            dir,
            bin: bin_dir(),
            password,
        };
        let data = pg.data();
        let mut initdb = vec!["-D", &data, "-U", "postgres", "--no-sync"];
        let pwfile = pg.dir.join("pwfile").to_string_lossy().into_owned();
        match password {
            None => initdb.push("--auth=trust"),
            Some(password) => {
                std::fs::write(&pwfile, password).expect("password file");
                initdb.extend(["--auth-local=trust", "--auth-host=scram-sha-256"]);
                initdb.extend(["--pwfile", &pwfile]);
            }
        }
        pg.run("initdb", &initdb);
        pg.start_server();
        pg
    }

    /// The `postgres` database of this cluster.
    pub fn url(&self) -> String {
        let login = match self.password {
            Some(password) => format!("postgres:{password}"),
            None => "postgres".to_owned(),
        };
        format!("postgres://{login}@127.0.0.1:{}/postgres", self.port)
    }

    fn data(&self) -> String {
        self.dir.join("data").to_string_lossy().into_owned()
    }

    /// Start the server and wait until it accepts connections.
    pub fn start_server(&self) {
        let options = format!(
            "-h 127.0.0.1 -p {} -k /tmp -c fsync=off -c max_connections=60",
            self.port
        );
        let log = self.dir.join("server.log").to_string_lossy().into_owned();
        let data = self.data();
        self.run(
            "pg_ctl",
            &[
                "-D", &data, "-l", &log, "-o", &options, "-w", "-t", "60", "start",
            ],
        );
    }

    /// Stop the server (`mode`), waiting until it is down.
    pub fn stop_server(&self, mode: Stop) {
        let data = self.data();
        self.run(
            "pg_ctl",
            &["-D", &data, "-m", mode.mode(), "-w", "-t", "60", "stop"],
        );
    }

    /// Stop, then start again; returns how long the server was unreachable.
    pub fn restart(&self, mode: Stop) -> Duration {
        let began = Instant::now();
        self.stop_server(mode);
        self.start_server();
        began.elapsed()
    }

    /// `program` of the server's installation, run as the `postgres` user when we are root (initdb refuses root).
    fn command(&self, program: &str) -> Command {
        let path = self.bin.join(program);
        if is_root() {
            let mut c = Command::new("runuser");
            c.args(["-u", "postgres", "--"]).arg(path);
            c
        } else {
            Command::new(path)
        }
    }

    fn run(&self, program: &str, args: &[&str]) {
        let output = self
            .command(program)
            .args(args)
            .output()
            .unwrap_or_else(|e| panic!("run {program}: {e}"));
        assert!(
            output.status.success(),
            "{program} {args:?} failed: {}{}",
            String::from_utf8_lossy(&output.stdout),
            String::from_utf8_lossy(&output.stderr)
        );
    }
}

impl Drop for ThrowawayPg {
    fn drop(&mut self) {
        let data = self.data();
        let _ = self
            .command("pg_ctl")
            .args(["-D", data.as_str(), "-m", "immediate", "stop"])
            .output();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}
