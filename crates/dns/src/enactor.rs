//! Enactors publish the planner's plans to the [`PlanStore`].
//!
//! Publishing is two steps, each atomic on its own: stage (write the plan's immutable file), then
//! commit (the store's compare-and-set of the pointer). Each enactor carries the fencing token it was
//! issued when created (I5), so several may run, and however late one of them commits, the store
//! refuses a plan that is not newer than the one in effect or a token older than the newest that
//! published: the refusal is a typed [`StaleReason`], logged, and changes nothing.
//!
//! An enactor that crashes between the two steps leaves an extra plan file newer than the plan in
//! effect. Clean-up may not touch it (I3); the next enactor's newer plan rolls forward past it, and
//! a store whose pointer was lost serves it as the newest intact plan.

use std::sync::Arc;

use crate::plan::{Generation, Plan};
use crate::store::{ApplyOutcome, FencingToken, PlanStore, StoreError};

pub struct Enactor {
    store: Arc<PlanStore>,
    token: FencingToken,
}

/// A plan whose file is written but which is not yet in effect.
#[must_use = "a staged plan is published only by commit"]
pub struct StagedPlan<'a> {
    enactor: &'a Enactor,
    generation: Generation,
}

impl Enactor {
    /// An enactor with a fresh token, which fences out every enactor created before it.
    pub fn new(store: Arc<PlanStore>) -> Result<Enactor, StoreError> {
        let token = store.issue_token()?;
        Ok(Enactor { store, token })
    }

    /// Stages then commits `plan`.
    pub fn publish(&self, plan: &Plan) -> Result<ApplyOutcome, StoreError> {
        self.stage(plan)?.commit()
    }

    /// Writes `plan`'s file; nothing is published yet.
    pub fn stage(&self, plan: &Plan) -> Result<StagedPlan<'_>, StoreError> {
        self.store.put_plan(plan)?;
        Ok(StagedPlan {
            enactor: self,
            generation: plan.generation,
        })
    }
}

impl StagedPlan<'_> {
    /// Makes the staged plan the plan in effect, unless the store finds it stale.
    pub fn commit(self) -> Result<ApplyOutcome, StoreError> {
        let Enactor { store, token } = self.enactor;
        let outcome = store.apply(self.generation, *token)?;
        if let ApplyOutcome::Stale(reason) = outcome {
            tracing::warn!(
                generation = self.generation,
                token,
                %reason,
                "stale plan write rejected; the published plan is unchanged"
            );
        }
        Ok(outcome)
    }
}
