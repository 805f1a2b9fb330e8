//! The doctor never prints a password: not in its text or JSON output, not
//! in the errors for malformed URLs, unreachable servers or bad settings.

mod common;

use common::{closed_port, run};

const BAD: &[&str] = &[
    "mysql://pw:S3cretPass!@127.0.0.1:3306/db?foo=bar",
    "mysql://pw:S3cretPass!@127.0.0.1:99999/db",
    "mysql://pw:S3cretPass!@[::1:/db",
    "postgres://pw:S3cretPass!@[::1:/db",
    "mysql://pw:S3cret@Pass!@127.0.0.1:1/db",
];

#[test]
fn no_password_in_text_or_json_on_any_error_path() {
    let port = closed_port();
    let refused = format!("mysql://pw:S3cretPass!@127.0.0.1:{port}/db");
    let live = format!("http://pw:S3cretPass!@127.0.0.1:{port}/debug/pool");
    let mut urls: Vec<&str> = BAD.to_vec();
    urls.push(&refused);
    for url in urls {
        for json in [false, true] {
            let mut args = vec!["doctor", url];
            if json {
                args.push("--json");
            }
            let (code, out, err) = run(&args);
            assert_eq!(code, 3, "{url}: {out}{err}");
            let all = format!("{out}{err}");
            assert!(
                !all.contains("S3cret") && !all.contains("Pass!"),
                "{url}: {all}"
            );
        }
    }
    let (code, out, err) = run(&["doctor", "--live", &live, "--json"]);
    assert_eq!(code, 3, "{out}{err}");
    assert!(!format!("{out}{err}").contains("S3cret"), "{out}{err}");
}

#[test]
fn a_zero_timeout_is_refused() {
    let (code, _, err) = run(&[
        "doctor",
        "mysql://root@127.0.0.1:3306/test",
        "--timeout",
        "0s",
    ]);
    assert_eq!(code, 3);
    assert!(err.contains("longer than zero"), "{err}");
}
