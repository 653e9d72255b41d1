//! A private PostgreSQL server for tests that need one configured differently from the machine's
//! (TLS required), on a free loopback port, from the installed server binaries. It runs as the
//! `postgres` user when the tests run as root (the server refuses to run as root) and is stopped and
//! removed on drop. The machine's shared server is never touched.

use crate::pki::TestCa;
use std::path::{Path, PathBuf};
use std::process::Command;
use uuid::Uuid;

pub struct PostgresServer {
    pub port: u16,
    dir: PathBuf,
    bin: PathBuf,
}

fn bin_dir() -> anyhow::Result<PathBuf> {
    let mut versions: Vec<_> = std::fs::read_dir("/usr/lib/postgresql")?
        .filter_map(Result::ok)
        .map(|e| e.path())
        .filter(|p| p.join("bin/pg_ctl").exists())
        .collect();
    versions.sort_by_key(|p| {
        p.file_name()
            .and_then(|n| n.to_str())
            .and_then(|n| n.parse::<u32>().ok())
            .unwrap_or(0)
    });
    versions
        .pop()
        .map(|p| p.join("bin"))
        .ok_or_else(|| anyhow::anyhow!("no PostgreSQL server binaries under /usr/lib/postgresql"))
}

fn is_root() -> bool {
    Command::new("id")
        .arg("-u")
        .output()
        .map(|o| o.stdout.starts_with(b"0"))
        .unwrap_or(false)
}

/// Runs a server binary, as `postgres` when we are root.
fn run(bin: &Path, args: &[&str]) -> anyhow::Result<()> {
    let status = if is_root() {
        Command::new("runuser")
            .args(["-u", "postgres", "--"])
            .arg(bin)
            .args(args)
            .output()?
    } else {
        Command::new(bin).args(args).output()?
    };
    if !status.status.success() {
        anyhow::bail!(
            "{} failed: {}",
            bin.display(),
            String::from_utf8_lossy(&status.stderr)
        );
    }
    Ok(())
}

impl PostgresServer {
    /// Starts a server that accepts only TLS connections from 127.0.0.1 (trust auth inside TLS),
    /// with a server certificate for 127.0.0.1 and localhost signed by `ca`.
    pub fn start_tls_only(ca: &TestCa) -> anyhow::Result<Self> {
        let bin = bin_dir()?;
        let port = std::net::TcpListener::bind("127.0.0.1:0")?
            .local_addr()?
            .port();
        let dir = std::env::temp_dir().join(format!("careloop-pg-{}", Uuid::new_v4().simple()));
        let data = dir.join("data");
        std::fs::create_dir_all(&dir)?;
        let server = ca.issue("postgres-server", TestCa::local_names(), "localhost");
        std::fs::copy(&server.cert_file, dir.join("server.crt"))?;
        std::fs::copy(&server.key_file, dir.join("server.key"))?;
        if is_root() {
            let owned = Command::new("chown")
                .args(["-R", "postgres:postgres"])
                .arg(&dir)
                .status()?;
            anyhow::ensure!(owned.success(), "chown of the test cluster folder failed");
        }
        let this = Self { port, dir, bin };
        let data_arg = data.display().to_string();
        run(
            &this.bin.join("initdb"),
            &[
                "-D",
                &data_arg,
                "-U",
                "postgres",
                "--auth=trust",
                "-E",
                "UTF8",
            ],
        )?;
        // Only TLS from loopback; plaintext TCP has no pg_hba line and is refused.
        std::fs::write(
            data.join("pg_hba.conf"),
            "local all all trust\nhostssl all all 127.0.0.1/32 trust\n",
        )?;
        let conf = format!(
            "port = {port}\nlisten_addresses = '127.0.0.1'\nunix_socket_directories = '{dir}'\n\
             ssl = on\nssl_cert_file = '{dir}/server.crt'\nssl_key_file = '{dir}/server.key'\n\
             fsync = off\nmax_connections = 20\nshared_buffers = '16MB'\n",
            dir = this.dir.display()
        );
        let mut existing = std::fs::read_to_string(data.join("postgresql.conf"))?;
        existing.push_str(&conf);
        std::fs::write(data.join("postgresql.conf"), existing)?;
        std::fs::set_permissions(
            this.dir.join("server.key"),
            std::os::unix::fs::PermissionsExt::from_mode(0o600),
        )?;
        let log = this.dir.join("server.log").display().to_string();
        run(
            &this.bin.join("pg_ctl"),
            &["-D", &data_arg, "-l", &log, "-w", "-t", "60", "start"],
        )?;
        Ok(this)
    }

    /// A connection URL for the `postgres` superuser with these extra parameters.
    pub fn url(&self, params: &str) -> String {
        format!(
            "postgres://postgres@127.0.0.1:{}/postgres?{params}",
            self.port
        )
    }
}

impl Drop for PostgresServer {
    fn drop(&mut self) {
        let data = self.dir.join("data").display().to_string();
        let _ = run(
            &self.bin.join("pg_ctl"),
            &["-D", &data, "-m", "immediate", "-w", "stop"],
        );
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}
