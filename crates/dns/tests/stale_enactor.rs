//! A delayed enactor cannot undo newer plans (issue 8, "What it must show", third line).
//!
//! With the real on-disk store: an enactor stages the plan it will publish, then is held on a
//! channel while another enactor publishes two newer plans and clean-up deletes the older ones
//! (the delayed enactor's among them). When it resumes, its write is refused as stale and the
//! published plan stays the newest, also after the store is reopened from disk.

use std::collections::BTreeMap;
use std::net::{IpAddr, Ipv4Addr};
use std::sync::Arc;
use std::sync::mpsc;
use std::thread;

use haven_dns::enactor::Enactor;
use haven_dns::plan::{Generation, Plan, RecordSet};
use haven_dns::store::{ApplyOutcome, PlanStore, StaleReason};

const NAME: &str = "dynamodb.us-east-1.haven.test.";

/// A plan whose one answer is `127.0.0.<generation>`, so each plan's answer is recognisable.
fn plan(generation: Generation) -> Plan {
    let address = IpAddr::V4(Ipv4Addr::new(127, 0, 0, generation as u8));
    let set = RecordSet {
        name: NAME.to_owned(),
        addresses: vec![address],
        ttl: 30,
        degraded: false,
    };
    Plan {
        generation,
        created_at_ms: generation * 1000,
        zone: "haven.test.".to_owned(),
        record_sets: BTreeMap::from([(NAME.to_owned(), set)]),
    }
}

/// An on-disk store in a fresh directory, with plan 1 in effect.
fn store_publishing_plan_1() -> (tempfile::TempDir, Arc<PlanStore>) {
    let dir = tempfile::tempdir().unwrap();
    let store = Arc::new(PlanStore::open(dir.path()).unwrap());
    let outcome = Enactor::new(store.clone())
        .unwrap()
        .publish(&plan(1))
        .unwrap();
    assert!(matches!(outcome, ApplyOutcome::Applied(_)), "{outcome:?}");
    (dir, store)
}

fn published(store: &PlanStore) -> Arc<Plan> {
    store.effective().unwrap().expect("a plan is in effect")
}

/// Which of the two enactors was created last, and so holds the newer fencing token.
#[derive(Clone, Copy, PartialEq)]
enum NewerToken {
    Delayed,
    Punctual,
}

/// Runs the scenario and returns why the delayed enactor's write was refused.
fn delayed_enactor_resumes_after_newer_plans_and_cleanup(newer_token: NewerToken) -> StaleReason {
    let (dir, store) = store_publishing_plan_1();

    let (delayed, punctual) = match newer_token {
        NewerToken::Punctual => {
            let delayed = Enactor::new(store.clone()).unwrap();
            (delayed, Enactor::new(store.clone()).unwrap())
        }
        NewerToken::Delayed => {
            let punctual = Enactor::new(store.clone()).unwrap();
            (Enactor::new(store.clone()).unwrap(), punctual)
        }
    };

    let (staged_sender, staged) = mpsc::channel();
    let (resume, resume_receiver) = mpsc::channel::<()>();
    let delayed_thread = thread::spawn(move || {
        let staged_plan = delayed.stage(&plan(2)).unwrap();
        staged_sender.send(()).unwrap();
        resume_receiver.recv().unwrap();
        staged_plan.commit().unwrap()
    });

    staged.recv().unwrap();
    assert!(store.stored_generations().unwrap().contains(&2));
    for generation in [3, 4] {
        let outcome = punctual.publish(&plan(generation)).unwrap();
        assert!(matches!(outcome, ApplyOutcome::Applied(_)), "{outcome:?}");
    }
    let deleted = store.cleanup(0).unwrap();
    assert_eq!(
        deleted,
        vec![1, 2, 3],
        "clean-up removes every plan older than 4"
    );

    resume.send(()).unwrap();
    let outcome = delayed_thread.join().unwrap();
    let ApplyOutcome::Stale(reason) = outcome else {
        panic!("the delayed enactor's write was applied: {outcome:?}");
    };

    assert_eq!(*published(&store), plan(4));
    drop((punctual, store));
    let reopened = PlanStore::open(dir.path()).unwrap();
    assert_eq!(
        *published(&reopened),
        plan(4),
        "the newest plan is what the disk holds"
    );
    reason
}

#[test]
fn delayed_enactor_with_the_newer_token_is_refused_by_generation() {
    let reason = delayed_enactor_resumes_after_newer_plans_and_cleanup(NewerToken::Delayed);
    assert_eq!(
        reason,
        StaleReason::NotNewer {
            candidate: 2,
            effective: 4
        }
    );
}

#[test]
fn delayed_enactor_with_an_older_token_is_fenced_out() {
    let reason = delayed_enactor_resumes_after_newer_plans_and_cleanup(NewerToken::Punctual);
    assert!(
        matches!(reason, StaleReason::FencedOut { presented, current } if presented < current),
        "{reason:?}"
    );
}

#[test]
fn enactor_crashing_between_stage_and_commit_is_rolled_forward() {
    let (_dir, store) = store_publishing_plan_1();

    // Staged, then the enactor is gone before committing.
    let crashed = Enactor::new(store.clone()).unwrap();
    drop(crashed.stage(&plan(2)).unwrap());
    assert_eq!(published(&store).generation, 1);
    assert_eq!(
        store.cleanup(0).unwrap(),
        Vec::<Generation>::new(),
        "plan 2 is newer: kept"
    );

    // The next enactor's plan goes above everything stored, and wins.
    let next_generation = store.highest_generation().unwrap() + 1;
    let outcome = Enactor::new(store.clone())
        .unwrap()
        .publish(&plan(next_generation))
        .unwrap();
    assert!(matches!(outcome, ApplyOutcome::Applied(_)), "{outcome:?}");
    assert_eq!(published(&store).generation, 3);
    assert_eq!(store.cleanup(0).unwrap(), vec![1, 2]);
}
