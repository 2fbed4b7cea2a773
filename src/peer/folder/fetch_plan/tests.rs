use super::*;
use crate::wire::Sha256;

fn id_of(bytes: &[u8]) -> ContentId {
    ContentId::from_parts(bytes.len() as u64, 262_144, &[Sha256::of(bytes)])
}

fn manifest(files: &[(&str, &[u8])]) -> FolderManifest {
    FolderManifest::of_contents(files, &["zz empty folder"]).unwrap()
}

fn tree() -> FolderManifest {
    manifest(&[
        ("a", b"aaaa"),
        ("copy/a", b"aaaa"),
        ("b", b"bb"),
        ("c", b"cccccc"),
        ("zero", b""),
    ])
}

#[test]
fn a_content_in_two_places_is_fetched_once_and_empty_files_not_at_all() {
    let mut plan = FetchPlan::new(&tree(), 8, |_| false);
    let mut started = Vec::new();
    while let Some((id, size)) = plan.next_to_start() {
        started.push((id, size));
    }
    assert_eq!(
        started,
        [
            (id_of(b"aaaa"), 4),
            (id_of(b"bb"), 2),
            (id_of(b"cccccc"), 6)
        ]
    );
    let p = plan.progress(0);
    assert_eq!(
        (p.files_done, p.files_total),
        (1, 5),
        "the empty file is done"
    );
    assert_eq!((p.bytes_done, p.bytes_total, p.duplicates), (0, 12, 1));
    plan.handle_done(&id_of(b"aaaa")).unwrap();
    // Both copies of "aaaa" are done with one fetch.
    assert_eq!(plan.progress(0).files_done, 3);
    assert_eq!(plan.progress(0).bytes_done, 4);
    assert!(!plan.is_complete());
    plan.handle_done(&id_of(b"bb")).unwrap();
    plan.handle_done(&id_of(b"cccccc")).unwrap();
    assert!(plan.is_complete());
    let p = plan.progress(0);
    assert_eq!((p.files_done, p.bytes_done), (5, 12));
}

#[test]
fn no_more_than_the_window_runs_at_once() {
    let mut plan = FetchPlan::new(&tree(), 2, |_| false);
    assert!(plan.next_to_start().is_some());
    assert!(plan.next_to_start().is_some());
    assert_eq!(plan.next_to_start(), None);
    let first = *plan.running().next().unwrap();
    plan.handle_done(&first).unwrap();
    assert!(plan.next_to_start().is_some());
    assert_eq!(plan.next_to_start(), None);
}

#[test]
fn contents_verified_by_an_earlier_run_are_not_fetched_again() {
    let kept = id_of(b"aaaa");
    let mut plan = FetchPlan::new(&tree(), 8, |id| *id == kept);
    let p = plan.progress(0);
    assert_eq!((p.files_done, p.bytes_done, p.contents_kept), (3, 4, 1));
    let mut started = Vec::new();
    while let Some((id, _)) = plan.next_to_start() {
        started.push(id);
    }
    assert!(!started.contains(&kept));
    assert_eq!(started.len(), 2);
}

#[test]
fn a_stopped_content_goes_back_in_the_queue_and_strays_are_refused() {
    let mut plan = FetchPlan::new(&tree(), 1, |_| false);
    let (id, _) = plan.next_to_start().unwrap();
    plan.handle_stopped(&id).unwrap();
    assert!(!plan.is_complete());
    // The others first, then the stopped one again.
    let order: Vec<ContentId> = std::iter::from_fn(|| {
        let (next, _) = plan.next_to_start()?;
        plan.handle_done(&next).unwrap();
        Some(next)
    })
    .collect();
    assert_eq!(order.last(), Some(&id));
    assert!(plan.is_complete());
    assert_eq!(plan.handle_done(&id), Err(NotRunning(id)));
    assert_eq!(
        plan.handle_stopped(&id_of(b"nope")),
        Err(NotRunning(id_of(b"nope")))
    );
}

#[test]
fn bytes_in_flight_count_toward_progress_but_never_past_the_total() {
    let mut plan = FetchPlan::new(&tree(), 8, |_| false);
    plan.next_to_start();
    assert_eq!(plan.progress(3).bytes_done, 3);
    assert_eq!(plan.progress(1000).bytes_done, 12);
}

#[test]
fn an_empty_tree_is_complete_at_once() {
    let plan = FetchPlan::new(&manifest(&[]), 8, |_| false);
    assert!(plan.is_complete());
    assert_eq!(plan.progress(0), FolderProgress::default());
}
