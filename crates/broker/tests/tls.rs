//! rediss://: a redis-server of the test's own with TLS only (Debian's is built with it), its
//! certificate signed by a CA the test makes with openssl; our writer and reader trust that CA
//! with --tls-ca. Without --tls-ca (the system's roots) the server is refused: the certificate
//! check is real. Skipped (one line) without openssl outside CI.

mod common;

use std::path::Path;
use std::process::Command;

use common::{PRINTED, READER, Server, WRITER, available, ours};
use ipc_testkit::run;

/// CA, then a server certificate for 127.0.0.1 and localhost signed by it, in `dir`.
fn make_certificates(dir: &Path) {
    let openssl = |args: &[&str]| {
        let out = Command::new("openssl")
            .args(args)
            .current_dir(dir)
            .output()
            .expect("openssl");
        assert!(out.status.success(), "openssl {args:?}: {out:?}");
    };
    let ec = [
        "-newkey",
        "ec",
        "-pkeyopt",
        "ec_paramgen_curve:P-256",
        "-nodes",
    ];
    openssl(
        &[
            &["req", "-x509"],
            &ec[..],
            &[
                "-keyout",
                "ca.key",
                "-out",
                "ca.crt",
                "-days",
                "1",
                "-subj",
                "/CN=ipc test CA",
                "-addext",
                "basicConstraints=critical,CA:TRUE",
                "-addext",
                "keyUsage=critical,keyCertSign",
            ],
        ]
        .concat(),
    );
    openssl(
        &[
            &["req"],
            &ec[..],
            &[
                "-keyout",
                "server.key",
                "-out",
                "server.csr",
                "-subj",
                "/CN=localhost",
            ],
        ]
        .concat(),
    );
    std::fs::write(
        dir.join("ext"),
        "subjectAltName=DNS:localhost,IP:127.0.0.1\nbasicConstraints=CA:FALSE\n\
         extendedKeyUsage=serverAuth\n",
    )
    .unwrap();
    openssl(&[
        "x509",
        "-req",
        "-in",
        "server.csr",
        "-CA",
        "ca.crt",
        "-CAkey",
        "ca.key",
        "-CAcreateserial",
        "-out",
        "server.crt",
        "-days",
        "1",
        "-extfile",
        "ext",
    ]);
}

#[test]
fn rediss_with_the_tests_own_ca() {
    if !available() {
        return;
    }
    if Command::new("openssl").arg("version").output().is_err() {
        if std::env::var("CI").is_ok_and(|v| v == "true") {
            panic!("the TLS test must run in CI (CI is set): openssl is missing");
        }
        ipc_testkit::skipped(
            "skipping Redis TLS: openssl not installed (apt-get install -y openssl)",
        );
        return;
    }
    let certs = ipc_testkit::temp_dir();
    make_certificates(certs.path());
    let file = |name: &str| certs.path().join(name).to_str().unwrap().to_owned();
    let plain = Server::new(&[]);
    // TLS on the port the plain server would have used; plain TCP off.
    let tls_port = plain.port.to_string();
    let _server = Server::start(&[
        "--port",
        "0",
        "--tls-port",
        &tls_port,
        "--tls-cert-file",
        &file("server.crt"),
        "--tls-key-file",
        &file("server.key"),
        "--tls-ca-cert-file",
        &file("ca.crt"),
        "--tls-auth-clients",
        "no",
    ]);
    drop(plain);
    let url = format!("rediss://127.0.0.1:{tls_port}");
    let ca = file("ca.crt");
    run("writer", &mut ours(WRITER, &url, &["--tls-ca", &ca]), None).assert_success();
    run("reader", &mut ours(READER, &url, &["--tls-ca", &ca]), None)
        .assert_success()
        .assert_stdout(PRINTED);
    // The system's roots do not know our CA: refused, not waited for.
    let refused = run("writer", &mut ours(WRITER, &url, &[]), None);
    assert_eq!(refused.status.code(), Some(1), "{refused:?}");
    assert!(
        refused.stderr.to_lowercase().contains("certificate"),
        "{refused:?}"
    );
}
