//! The worker pool is bounded: with 2 workers a third client waits for its `go ahead` until one is free.

use std::time::Duration;

use crate::util::{entries, wait_until, RawClient, Serve, PATIENCE};

#[test]
fn third_client_waits_for_a_free_worker() {
    let server = Serve::start(&["--workers", "2"]);
    let first = RawClient::start_upload(server.addr, 5, b"first.txt");
    let second = RawClient::start_upload(server.addr, 6, b"second.txt");

    let mut third = RawClient::connect(server.addr);
    third.send_header(5, b"third.txt");
    assert_eq!(
        third.reply_within(Duration::from_millis(800)),
        None,
        "the third client got a reply while both workers were busy"
    );

    first.finish(b"11111");
    assert_eq!(
        third.reply_within(PATIENCE).as_deref(),
        Some(&b"go ahead"[..])
    );
    third.finish(b"33333");
    second.finish(b"222222");

    wait_until(
        || entries(server.drop_dir()).len() == 3,
        "three files",
        || server.log(),
    );
    assert_eq!(
        entries(server.drop_dir()),
        ["first.txt", "second.txt", "third.txt"]
    );
    assert_eq!(
        std::fs::read(server.drop_dir().join("third.txt")).unwrap(),
        b"33333"
    );
}

#[test]
fn many_clients_beyond_the_pool_are_all_served() {
    let server = Serve::start(&["--workers", "2"]);
    let src = tempfile::tempdir().unwrap();
    let paths: Vec<_> = (0..12)
        .map(|i| {
            crate::util::write_file(
                src.path(),
                &format!("f{i:02}.bin"),
                &crate::util::pattern(20_000 + i, i as u8),
            )
        })
        .collect();
    server
        .send()
        .args(["--jobs", "12"])
        .args(&paths)
        .assert()
        .success();
    assert_eq!(entries(server.drop_dir()).len(), 12);
    for (i, path) in paths.iter().enumerate() {
        let name = path.file_name().unwrap();
        assert_eq!(
            std::fs::read(server.drop_dir().join(name)).unwrap(),
            std::fs::read(path).unwrap(),
            "file {i}"
        );
    }
}
