//! A real PostgreSQL server in a temporary directory for the tests, the bench and the demo: Debian's binaries, a free loopback port, trust authentication, stopped and removed on drop.

use std::io::{Read, Seek, SeekFrom};
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use anyhow::{Context, bail};

/// Where Debian's `postgresql-NN` packages put the server's binaries, one
/// directory per major version; they are not on PATH.
const DEBIAN_ROOT: &str = "/usr/lib/postgresql";
const SUPERUSER: &str = "voicepay";
const DATABASE: &str = "voicepay";
/// How many free ports to try when another process takes ours between the
/// moment we see it free and the server's bind.
const PORT_ATTEMPTS: usize = 5;

/// A PostgreSQL server of its own: superuser `voicepay` (trusted, no
/// password), database `voicepay`, on 127.0.0.1 and a unix socket in its
/// directory. Dropping it stops the server as a crash would and removes
/// the directory.
pub struct TempPostgres {
    bin: PathBuf,
    /// Holds `data/` (the cluster), `log` (the server's output) and the socket.
    dir: tempfile::TempDir,
    port: u16,
    /// initdb and the server refuse to run as root: as root we run them as
    /// the `postgres` user Debian's package creates.
    as_postgres: bool,
}

impl TempPostgres {
    /// Makes a cluster in a fresh temporary directory, starts it on a free
    /// port, waits until it accepts connections and creates the database.
    pub fn start() -> anyhow::Result<TempPostgres> {
        TempPostgres::start_on_ports(free_port)
    }

    fn start_on_ports(
        mut next_port: impl FnMut() -> anyhow::Result<u16>,
    ) -> anyhow::Result<TempPostgres> {
        let bin = newest_bin_dir(Path::new(DEBIAN_ROOT))?;
        let dir = tempfile::Builder::new()
            .prefix("voicepay-pg-")
            .tempdir()
            .context("PostgreSQL: cannot make a temporary directory")?;
        // The directory is ours, so its owner tells who we are.
        let as_postgres = dir
            .path()
            .metadata()
            .context("PostgreSQL: cannot read the temporary directory")?
            .uid()
            == 0;
        let mut pg = TempPostgres {
            bin,
            dir,
            port: 0,
            as_postgres,
        };
        if as_postgres {
            let mut chown = Command::new("chown");
            chown.arg("postgres:").arg(pg.dir.path());
            run(chown, "chown the temporary directory to the postgres user")?;
        }
        let data = pg.data();
        let mut initdb = pg.server_command("initdb");
        initdb
            .arg("-D")
            .arg(&data)
            .args(["-A", "trust", "-U", SUPERUSER, "--no-sync"])
            // Not the caller's locale, which may not be installed.
            .args(["--locale=C", "--encoding=UTF8"]);
        run(initdb, "initdb")?;

        let mut attempt = 1;
        loop {
            pg.port = next_port()?;
            match pg.start_server() {
                Ok(()) => break,
                Err(ServerStart::PortTaken(error)) if attempt < PORT_ATTEMPTS => {
                    tracing::debug!(port = pg.port, %error, "PostgreSQL: port taken, trying another");
                    attempt += 1;
                }
                Err(ServerStart::PortTaken(error) | ServerStart::Failed(error)) => {
                    return Err(error);
                }
            }
        }

        let mut createdb = pg.client_command("createdb");
        createdb
            .args(["-h", "127.0.0.1", "-p", &pg.port.to_string()])
            .args(["-U", SUPERUSER, DATABASE]);
        run(createdb, "createdb")?;
        Ok(pg)
    }

    /// `postgres://voicepay@127.0.0.1:PORT/voicepay`.
    pub fn url(&self) -> String {
        format!("postgres://{SUPERUSER}@127.0.0.1:{}/{DATABASE}", self.port)
    }

    pub fn port(&self) -> u16 {
        self.port
    }

    /// Stops the server at once, as a crash would (no checkpoint: the next
    /// start replays the write-ahead log). Returns once it has exited.
    pub fn stop(&mut self) -> anyhow::Result<()> {
        let mut stop = self.server_command("pg_ctl");
        stop.arg("-D")
            .arg(self.data())
            .args(["-m", "immediate", "-w", "stop"]);
        run(stop, "pg_ctl stop").map(drop)
    }

    /// Starts the stopped server again on the same data and the same port
    /// (so the same URL); fails if another process took the port meanwhile.
    pub fn start_again(&mut self) -> anyhow::Result<()> {
        match self.start_server() {
            Ok(()) => Ok(()),
            Err(ServerStart::PortTaken(error) | ServerStart::Failed(error)) => Err(error),
        }
    }

    /// Runs `sql` with psql on [`url`](Self::url) and returns what it
    /// printed: unaligned, tuples only (`select 1` gives "1\n"). Stops at the
    /// first error, which it returns with psql's message.
    pub fn psql(&self, sql: &str) -> anyhow::Result<String> {
        let mut psql = self.client_command("psql");
        psql.args(["-X", "-q", "-A", "-t", "-v", "ON_ERROR_STOP=1", "-d"])
            .arg(self.url())
            .args(["-c", sql]);
        let out = run(psql, "psql")?;
        Ok(String::from_utf8_lossy(&out.stdout).into_owned())
    }

    fn data(&self) -> PathBuf {
        self.dir.path().join("data")
    }

    fn log(&self) -> PathBuf {
        self.dir.path().join("log")
    }

    fn start_server(&mut self) -> Result<(), ServerStart> {
        let log = self.log();
        let logged_before = std::fs::metadata(&log).map(|m| m.len()).unwrap_or(0);
        let mut start = self.server_command("pg_ctl");
        start
            .arg("-D")
            .arg(self.data())
            // pg_ctl hands these to the server through a shell: quote the path.
            .arg("-o")
            .arg(format!(
                "-p {} -k '{}' -c listen_addresses=127.0.0.1",
                self.port,
                self.dir.path().display()
            ))
            .arg("-l")
            .arg(&log)
            .args(["-w", "start"]);
        match run(start, "pg_ctl start") {
            Ok(_) => Ok(()),
            Err(error) => {
                // pg_ctl only says "Examine the log output": the reason is there.
                let logged = read_from(&log, logged_before);
                let error = error.context(format!(
                    "PostgreSQL on port {} did not start; its log says:\n{}",
                    self.port,
                    tail(&logged, 2000)
                ));
                if logged.contains("Address already in use") {
                    Err(ServerStart::PortTaken(error))
                } else {
                    Err(ServerStart::Failed(error))
                }
            }
        }
    }

    /// initdb and pg_ctl: as the `postgres` user when we are root.
    fn server_command(&self, program: &str) -> Command {
        let path = self.bin.join(program);
        let mut command = if self.as_postgres {
            let mut runuser = Command::new("runuser");
            runuser.args(["-u", "postgres", "--"]).arg(path);
            runuser
        } else {
            Command::new(path)
        };
        // The postgres user may not enter the caller's working directory.
        command.current_dir(self.dir.path());
        clear_pg_environment(&mut command);
        command
    }

    /// Clients connect over TCP as `voicepay`, whoever runs them.
    fn client_command(&self, program: &str) -> Command {
        let mut command = Command::new(self.bin.join(program));
        clear_pg_environment(&mut command);
        command
    }
}

impl Drop for TempPostgres {
    fn drop(&mut self) {
        if let Err(error) = self.stop() {
            // Already stopped, most often. Should the server still run, it
            // shuts itself down once it sees its data directory gone.
            tracing::debug!(%error, "PostgreSQL: stop on drop");
        }
    }
}

enum ServerStart {
    PortTaken(anyhow::Error),
    Failed(anyhow::Error),
}

/// The newest `ROOT/<version>/bin` holding initdb and pg_ctl.
fn newest_bin_dir(root: &Path) -> anyhow::Result<PathBuf> {
    let newest = std::fs::read_dir(root)
        .into_iter()
        .flatten()
        .flatten()
        .filter_map(|entry| {
            let version: Vec<u32> = entry
                .file_name()
                .to_str()?
                .split('.')
                .map(|part| part.parse().ok())
                .collect::<Option<_>>()?;
            let bin = entry.path().join("bin");
            (bin.join("initdb").is_file() && bin.join("pg_ctl").is_file()).then_some((version, bin))
        })
        .max();
    match newest {
        Some((_, bin)) => Ok(bin),
        None => bail!(
            "no PostgreSQL server in {}/*/bin (scripts/setup.sh installs Debian's postgresql package)",
            root.display()
        ),
    }
}

fn free_port() -> anyhow::Result<u16> {
    let listener =
        std::net::TcpListener::bind("127.0.0.1:0").context("PostgreSQL: no free loopback port")?;
    Ok(listener.local_addr()?.port())
}

/// PGHOST, PGOPTIONS and the like from the caller's shell would steer our
/// commands to another server or change its settings.
fn clear_pg_environment(command: &mut Command) {
    for (name, _) in std::env::vars_os() {
        if name.to_string_lossy().starts_with("PG") {
            command.env_remove(name);
        }
    }
}

/// Runs `command`; a failure names `what` and carries its stderr.
fn run(mut command: Command, what: &str) -> anyhow::Result<Output> {
    let out = command
        .output()
        .with_context(|| format!("PostgreSQL: cannot run {what} ({command:?})"))?;
    if !out.status.success() {
        bail!(
            "PostgreSQL: {what} failed ({}): {}",
            out.status,
            String::from_utf8_lossy(&out.stderr).trim()
        );
    }
    Ok(out)
}

fn read_from(path: &Path, offset: u64) -> String {
    let mut text = Vec::new();
    if let Ok(mut file) = std::fs::File::open(path)
        && file.seek(SeekFrom::Start(offset)).is_ok()
    {
        let _ = file.read_to_end(&mut text);
    }
    String::from_utf8_lossy(&text).into_owned()
}

/// The last `max` bytes of `text` or fewer, cut on a character boundary.
fn tail(text: &str, max: usize) -> &str {
    let mut start = text.len().saturating_sub(max);
    while !text.is_char_boundary(start) {
        start += 1;
    }
    text[start..].trim()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn refuses(port: u16) -> bool {
        std::net::TcpStream::connect(("127.0.0.1", port)).is_err()
    }

    #[test]
    fn a_temporary_postgres_answers_on_its_url_and_is_gone_when_dropped() {
        let pg = TempPostgres::start().unwrap();
        let url = pg.url();
        assert_eq!(
            url,
            format!("postgres://voicepay@127.0.0.1:{}/voicepay", pg.port())
        );
        // Debian's own psql, as a user would run it, on the URL alone.
        let out = Command::new(pg.bin.join("psql"))
            .args([
                "-X",
                "-A",
                "-t",
                "-c",
                "select current_user, current_database()",
            ])
            .arg(&url)
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        assert_eq!(String::from_utf8_lossy(&out.stdout), "voicepay|voicepay\n");

        let (port, dir) = (pg.port(), pg.dir.path().to_path_buf());
        assert!(dir.join("data").is_dir());
        drop(pg);
        assert!(refuses(port), "port {port} still answers");
        assert!(!dir.exists(), "{} is still there", dir.display());
    }

    #[test]
    fn a_stopped_postgres_starts_again_with_its_data() {
        let mut pg = TempPostgres::start().unwrap();
        let url = pg.url();
        pg.psql("create table paid (id int primary key, amount bigint not null)")
            .unwrap();
        pg.psql("insert into paid values (1, 1250)").unwrap();

        pg.stop().unwrap();
        assert!(refuses(pg.port()));
        let error = pg.psql("select 1").unwrap_err().to_string();
        assert!(error.contains("psql failed"), "{error}");

        pg.start_again().unwrap();
        assert_eq!(pg.url(), url);
        assert_eq!(pg.psql("select id, amount from paid").unwrap(), "1|1250\n");
    }

    #[test]
    fn a_port_taken_by_another_process_is_given_up_for_a_free_one() {
        let squatter = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let taken = squatter.local_addr().unwrap().port();
        let mut offered = vec![taken];
        let pg = TempPostgres::start_on_ports(|| match offered.pop() {
            Some(port) => Ok(port),
            None => free_port(),
        })
        .unwrap();
        assert_ne!(pg.port(), taken);
        assert_eq!(pg.psql("select 1").unwrap(), "1\n");
    }

    #[test]
    fn a_postgres_whose_port_was_taken_while_stopped_says_so_from_its_log() {
        let mut pg = TempPostgres::start().unwrap();
        pg.stop().unwrap();
        let _squatter = std::net::TcpListener::bind(("127.0.0.1", pg.port())).unwrap();
        let error = format!("{:#}", pg.start_again().unwrap_err());
        assert!(error.contains("pg_ctl start failed"), "{error}");
        assert!(error.contains("Address already in use"), "{error}");
    }

    #[test]
    fn the_newest_installed_postgresql_is_the_one_started() {
        let root = tempfile::tempdir().unwrap();
        for version in ["9.6", "15", "13", "16"] {
            let bin = root.path().join(version).join("bin");
            std::fs::create_dir_all(&bin).unwrap();
            // 16 is a client-only leftover: no server binaries.
            if version != "16" {
                std::fs::write(bin.join("initdb"), "").unwrap();
                std::fs::write(bin.join("pg_ctl"), "").unwrap();
            }
        }
        std::fs::create_dir_all(root.path().join("README")).unwrap();
        assert_eq!(
            newest_bin_dir(root.path()).unwrap(),
            root.path().join("15").join("bin")
        );
    }

    #[test]
    fn without_postgresql_installed_the_error_names_the_setup_script() {
        let root = tempfile::tempdir().unwrap();
        for root in [root.path().to_path_buf(), root.path().join("absent")] {
            let error = newest_bin_dir(&root).unwrap_err().to_string();
            assert!(error.contains("scripts/setup.sh"), "{error}");
        }
    }
}
