//! Model checks of the plan protocol (issue 8, "What it must show", first line).
//!
//! One model, two designs. Both have a planner making plans with increasing generations, two
//! enactors whose steps interleave in every order (so either can be delayed arbitrarily) and that can
//! crash and restart with a new fencing token, and a clean-up job that can run at any moment, choosing
//! its victims first and deleting them one by one later. The decisions are made by the very
//! functions the store uses (`decide_apply`, `may_delete`, `cleanup_victims`); what differs is
//! *where* they are made:
//! - Haven: the compare-and-set and the pointer flip are one atomic step, and the store checks every
//!   delete with `may_delete` against the plan in effect at that moment, so clean-up is modelled as
//!   a careless caller that may ask to delete any stored plan. The checker explores every state and
//!   finds no violation of I1, I2 or I3.
//! - Check-then-act (the October 2025 design): an enactor checks that its plan is newer, and writes
//!   the pointer later without checking again; clean-up deletes the plans older than the plan it saw
//!   in effect, without checking again when it deletes. The checker finds the empty-record path.

use std::collections::BTreeSet;

use haven_dns::plan::Generation;
use haven_dns::store::{FencingToken, Pointer, cleanup_victims, decide_apply, may_delete};
use stateright::{Checker, HasDiscoveries, Model, Property};

/// The planner makes generations 2, 3 and 4 after the boot plan, 1.
const NEWEST_GENERATION: Generation = 4;
const ENACTORS: usize = 2;
/// Crashes across all enactors (each restart draws a new token, so this bounds the state space).
const CRASHES: u8 = 2;

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
enum Design {
    Haven,
    CheckThenAct,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
enum Enactor {
    Down,
    Idle(FencingToken),
    /// Has read the plan it will publish.
    Fetched(FencingToken, Generation),
    /// Has written the plan's file.
    Staged(FencingToken, Generation),
    /// Check-then-act only: the check passed; the write is still to come.
    Checked(FencingToken, Generation),
}

#[derive(Clone, Debug, PartialEq, Eq, Hash)]
struct World {
    newest_planned: Generation,
    stored: BTreeSet<Generation>,
    pointer: Pointer,
    tokens_issued: FencingToken,
    enactors: [Enactor; ENACTORS],
    /// Victims clean-up has chosen and not yet deleted.
    cleanup_pending: Vec<Generation>,
    crashes_left: u8,
    // History, for the properties.
    highest_published: Generation,
    deleted_live_plan: bool,
    rejected_stale_write: bool,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
enum Action {
    Plan,
    Start(usize),
    Fetch(usize),
    Stage(usize),
    Check(usize),
    Commit(usize),
    Crash(usize),
    CleanupScan,
    CleanupDelete(Generation),
}

struct Protocol {
    design: Design,
}

impl Protocol {
    fn commit(&self, world: &mut World, token: FencingToken, generation: Generation) {
        let stored = world.stored.contains(&generation);
        match self.design {
            Design::Haven => match decide_apply(world.pointer, generation, stored, token) {
                Ok(pointer) => publish(world, pointer),
                Err(_) => world.rejected_stale_write = true,
            },
            // The check was made earlier, in `Check`; the write does not look again.
            Design::CheckThenAct => publish(
                world,
                Pointer {
                    generation,
                    fence: token,
                },
            ),
        }
    }

    /// The plans clean-up asks to delete. The check-then-act job picks those older than the plan it
    /// sees in effect, a view that may be stale by the time it deletes. Haven's store trusts no
    /// caller: its clean-up may ask for any stored plan, and the store's `may_delete` decides.
    fn cleanup_scan(&self, world: &World) -> Vec<Generation> {
        match self.design {
            Design::Haven => world.stored.iter().copied().collect(),
            Design::CheckThenAct => {
                cleanup_victims(&world.stored, Some(world.pointer.generation), 0)
            }
        }
    }

    fn cleanup_delete(&self, world: &mut World, generation: Generation) {
        world.cleanup_pending.retain(|&victim| victim != generation);
        let in_effect = world.pointer.generation;
        let allowed = match self.design {
            Design::Haven => may_delete(generation, Some(in_effect)),
            Design::CheckThenAct => true,
        };
        if allowed && world.stored.remove(&generation) {
            world.deleted_live_plan |= generation >= in_effect;
        }
    }
}

fn publish(world: &mut World, pointer: Pointer) {
    world.pointer = pointer;
    world.highest_published = world.highest_published.max(pointer.generation);
}

impl Model for Protocol {
    type State = World;
    type Action = Action;

    fn init_states(&self) -> Vec<World> {
        vec![World {
            newest_planned: 1,
            stored: BTreeSet::from([1]),
            pointer: Pointer {
                generation: 1,
                fence: 0,
            },
            tokens_issued: 0,
            enactors: [Enactor::Down; ENACTORS],
            cleanup_pending: Vec::new(),
            crashes_left: CRASHES,
            highest_published: 1,
            deleted_live_plan: false,
            rejected_stale_write: false,
        }]
    }

    fn actions(&self, world: &World, actions: &mut Vec<Action>) {
        if world.newest_planned < NEWEST_GENERATION {
            actions.push(Action::Plan);
        }
        for (index, enactor) in world.enactors.iter().enumerate() {
            match enactor {
                Enactor::Down => actions.push(Action::Start(index)),
                Enactor::Idle(_) => actions.push(Action::Fetch(index)),
                Enactor::Fetched(..) => actions.push(Action::Stage(index)),
                Enactor::Staged(..) if self.design == Design::CheckThenAct => {
                    actions.push(Action::Check(index))
                }
                Enactor::Staged(..) | Enactor::Checked(..) => actions.push(Action::Commit(index)),
            }
            if *enactor != Enactor::Down && world.crashes_left > 0 {
                actions.push(Action::Crash(index));
            }
        }
        if world.cleanup_pending.is_empty() {
            actions.push(Action::CleanupScan);
        }
        actions.extend(
            world
                .cleanup_pending
                .iter()
                .map(|&g| Action::CleanupDelete(g)),
        );
    }

    fn next_state(&self, last: &World, action: Action) -> Option<World> {
        let mut world = last.clone();
        match action {
            Action::Plan => world.newest_planned += 1,
            Action::Start(index) => {
                world.tokens_issued += 1;
                world.enactors[index] = Enactor::Idle(world.tokens_issued);
            }
            Action::Fetch(index) => {
                let Enactor::Idle(token) = world.enactors[index] else {
                    return None;
                };
                world.enactors[index] = Enactor::Fetched(token, world.newest_planned);
            }
            Action::Stage(index) => {
                let Enactor::Fetched(token, generation) = world.enactors[index] else {
                    return None;
                };
                world.stored.insert(generation);
                world.enactors[index] = Enactor::Staged(token, generation);
            }
            Action::Check(index) => {
                let Enactor::Staged(token, generation) = world.enactors[index] else {
                    return None;
                };
                let stored = world.stored.contains(&generation);
                world.enactors[index] = match decide_apply(world.pointer, generation, stored, token)
                {
                    Ok(_) => Enactor::Checked(token, generation),
                    Err(_) => Enactor::Idle(token),
                };
            }
            Action::Commit(index) => {
                let (Enactor::Staged(token, generation) | Enactor::Checked(token, generation)) =
                    world.enactors[index]
                else {
                    return None;
                };
                self.commit(&mut world, token, generation);
                world.enactors[index] = Enactor::Idle(token);
            }
            Action::Crash(index) => {
                world.crashes_left -= 1;
                world.enactors[index] = Enactor::Down;
            }
            Action::CleanupScan => world.cleanup_pending = self.cleanup_scan(&world),
            Action::CleanupDelete(generation) => self.cleanup_delete(&mut world, generation),
        }
        Some(world)
    }

    fn properties(&self) -> Vec<Property<Self>> {
        vec![
            Property::always(I1, |_, world: &World| {
                world.pointer.generation == world.highest_published
            }),
            Property::always(I2, |_, world: &World| {
                world.stored.contains(&world.pointer.generation)
            }),
            Property::always(I3, |_, world: &World| !world.deleted_live_plan),
            Property::sometimes("the newest plan gets published", |_, world: &World| {
                world.highest_published == NEWEST_GENERATION
            }),
            Property::sometimes("a stale write is rejected", |_, world: &World| {
                world.rejected_stale_write
            }),
        ]
    }
}

const I1: &str = "I1: an older plan never replaces a newer one";
const I2: &str = "I2: the published plan exists (the record is never empty)";
const I3: &str = "I3: clean-up never deleted the plan in effect or a newer one";

#[test]
fn havens_protocol_never_violates_i1_i2_i3() {
    let checker = Protocol {
        design: Design::Haven,
    }
    .checker()
    .spawn_bfs()
    .join();
    assert!(
        checker.is_done(),
        "the state space was explored exhaustively"
    );
    eprintln!(
        "Haven's protocol: {} states explored ({} unique, depth {}), no counterexample",
        checker.state_count(),
        checker.unique_state_count(),
        checker.max_depth()
    );
    checker.assert_properties();
}

#[test]
fn check_then_act_design_empties_the_record() {
    // Stop at the first (so, breadth-first, the shortest) path that empties the record.
    let checker = Protocol {
        design: Design::CheckThenAct,
    }
    .checker()
    .finish_when(HasDiscoveries::AnyOf(BTreeSet::from([I2])))
    .spawn_bfs()
    .join();
    let path = checker.assert_any_discovery(I2);
    eprintln!("check-then-act counterexample (the endpoint's record is empty): {path}");
    let last = path.last_state();
    assert!(
        !last.stored.contains(&last.pointer.generation),
        "the pointer names a deleted plan"
    );
}
