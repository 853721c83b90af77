//! `Deferred<T>`: the arguments of a subcommand, which clap defines only when the command line
//! names that subcommand (`clap::Command::defer`).
//!
//! Why: clap's derive builds the definition of every argument of every subcommand (names, help
//! texts, defaults, value parsers) before it reads the command line. `haven serve` has about sixty
//! arguments and `haven mirror` repeats them; defining them all was 16% of the instructions
//! `haven serve --in-memory` ran up to its first answer (callgrind). Deferred, a start defines its
//! own subcommand's arguments and only the names and one-line help of the others, which is what
//! `haven --help` lists, and runs 10% fewer instructions. clap builds a deferred subcommand before
//! it parses its arguments or prints its help, so what users see is unchanged.

use clap::{ArgMatches, Args, Command, FromArgMatches};

/// `T`'s arguments, defined when clap builds the subcommand; the value is `T`'s.
pub struct Deferred<T>(pub T);

impl<T: Args> Args for Deferred<T> {
    fn augment_args(command: Command) -> Command {
        command.defer(augment::<T>)
    }

    fn augment_args_for_update(command: Command) -> Command {
        command.defer(augment_for_update::<T>)
    }

    fn group_id() -> Option<clap::Id> {
        T::group_id()
    }
}

/// `T`'s arguments on `command`, keeping the subcommand's own help: undeferred, the derive sets
/// it after the arguments, over any that a flattened struct's doc comment set.
fn augment<T: Args>(command: Command) -> Command {
    keep_help(command, T::augment_args)
}

fn augment_for_update<T: Args>(command: Command) -> Command {
    keep_help(command, T::augment_args_for_update)
}

fn keep_help(command: Command, augment: fn(Command) -> Command) -> Command {
    let about = command.get_about().cloned();
    let long_about = command.get_long_about().cloned();
    let command = augment(command);
    let command = match about {
        Some(about) => command.about(about),
        None => command.about(None),
    };
    match long_about {
        Some(long_about) => command.long_about(long_about),
        None => command.long_about(None),
    }
}

impl<T: FromArgMatches> FromArgMatches for Deferred<T> {
    fn from_arg_matches(matches: &ArgMatches) -> Result<Self, clap::Error> {
        T::from_arg_matches(matches).map(Deferred)
    }

    fn from_arg_matches_mut(matches: &mut ArgMatches) -> Result<Self, clap::Error> {
        T::from_arg_matches_mut(matches).map(Deferred)
    }

    fn update_from_arg_matches(&mut self, matches: &ArgMatches) -> Result<(), clap::Error> {
        self.0.update_from_arg_matches(matches)
    }

    fn update_from_arg_matches_mut(&mut self, matches: &mut ArgMatches) -> Result<(), clap::Error> {
        self.0.update_from_arg_matches_mut(matches)
    }
}
