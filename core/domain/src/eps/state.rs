//! The prescription's state machine, pure: [`apply`] takes a record, an action and the time,
//! and gives the next version of the record or a refusal; it never changes its input.
//!
//! Status is the *effective* one ([`Prescription::effective_status`]: `0001`/`0002` more than
//! [`EXPIRY_DAYS`] (180) after issue count as `0004 Expired`). `P` is the acting pharmacy, `D` the one the
//! prescription is with; "pending" is [`Prescription::cancellation_pending`].
//!
//! | status                      | Cancel    | Release     | Return   | Dispense    | NotDispensed | Withdraw | Claim   |
//! |-----------------------------|-----------|-------------|----------|-------------|--------------|----------|---------|
//! | 0001                        | 0005      | 0002, D = P | ✗        | ✗           | ✗            | ✗        | ✗       |
//! | 0002, D = P                 | pending ¹ | ✗           | 0001 ²   | 0003/0006 ³ | 0007 ⁴       | ✗        | ✗       |
//! | 0003, D = P                 | pending ¹ | ✗           | 0001 ²   | 0003/0006 ³ | ✗ ⁴          | 0002 ⁵   | ✗       |
//! | 0006, D = P                 | ✗         | ✗           | ✗        | ✗           | ✗            | 0002 ⁵   | 0008    |
//! | 0007, D = P                 | ✗         | ✗           | ✗        | ✗           | ✗            | 0002 ⁵   | 0009    |
//! | 0002/0003/0006/0007, D ≠ P  | as above  | another     | another  | another     | another      | another  | another |
//! | 0004, 0005, 0008, 0009      | ✗         | ✗           | ✗        | ✗           | ✗            | ✗        | ✗       |
//!
//! ✗ is [`EpsErrorCode::InvalidStateTransition`]; "another" is
//! [`EpsErrorCode::WithAnotherDispenser`]. Checks run in this order, the first failing one
//! deciding the refusal:
//!
//! 1. A cancellation from any organisation but the prescribing one: [`EpsErrorCode::InvalidValue`]
//!    whatever the status (it is not that organisation's prescription to act on).
//! 2. A terminal status (expired included): ✗, naming the status.
//! 3. A pharmacy's action while another pharmacy holds it (`0002`, `0003`, `0006`, `0007`):
//!    "another", before any rule on the status, so a pharmacy learns only that it is not theirs.
//! 4. The table.
//!
//! ¹ The status stays; the prescription is marked for cancellation (the specification's
//!   R-0002/R-0003 replies). Asking again while marked: ✗.
//! ² `0005` instead if a cancellation is pending; either way the dispenser is cleared and
//!   supplied quantities reset.
//! ³ Supplied quantities are added per item, lines in order: an unknown item index is
//!   [`EpsErrorCode::ItemNotFound`]; no lines, a zero quantity or more than prescribed is
//!   [`EpsErrorCode::InvalidValue`]. Every item supplied in full gives `0006`, else `0003`.
//!   A supply clears a pending cancellation: it came too late (R-0004, "has been dispensed").
//! ⁴ Only while nothing has been supplied; clears a pending cancellation likewise (R-0010).
//! ⁵ Withdraws the dispense notifications: supplied quantities reset.
//!
//! Release is open to any pharmacy, nominated or not: a patient may take the token anywhere.
//! Every accepted action adds 1 to the version and appends a [`StatusChange`] (even when the
//! status stays) to the history, which keeps the latest [`HISTORY_MAX`].

use serde::{Deserialize, Serialize};

use super::prescription::{EXPIRY_DAYS, HISTORY_MAX, Prescription, StatusChange};
use super::status::PrescriptionStatus::{self, *};
use crate::pds::values::OdsCode;

/// What a prescriber or pharmacy asks of a prescription.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum EpsAction {
    /// The prescriber cancels it.
    Cancel {
        /// The prescriber's organisation.
        organisation: OdsCode,
    },
    /// A pharmacy downloads it to dispense.
    Release {
        /// The pharmacy.
        pharmacy: OdsCode,
    },
    /// The pharmacy gives it back undispensed, for another pharmacy to download.
    Return {
        /// The pharmacy.
        pharmacy: OdsCode,
    },
    /// A dispense notification: quantities supplied now, per item index (counting from 0),
    /// added to what was supplied before.
    Dispense {
        /// The pharmacy.
        pharmacy: OdsCode,
        /// (item index, quantity supplied now).
        lines: Vec<(usize, u32)>,
    },
    /// The pharmacy closes it without supplying anything.
    NotDispensed {
        /// The pharmacy.
        pharmacy: OdsCode,
    },
    /// The pharmacy withdraws its dispense notifications (a mistake), back to `0002`.
    Withdraw {
        /// The pharmacy.
        pharmacy: OdsCode,
    },
    /// The pharmacy claims payment for what it did.
    Claim {
        /// The pharmacy.
        pharmacy: OdsCode,
    },
}

/// An [`EpsAction`] without its details, as kept in the history.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum EpsActionKind {
    /// [`EpsAction::Cancel`].
    Cancel,
    /// [`EpsAction::Release`].
    Release,
    /// [`EpsAction::Return`].
    Return,
    /// [`EpsAction::Dispense`].
    Dispense,
    /// [`EpsAction::NotDispensed`].
    NotDispensed,
    /// [`EpsAction::Withdraw`].
    Withdraw,
    /// [`EpsAction::Claim`].
    Claim,
}

impl EpsActionKind {
    /// The action as a past participle, for messages ("cannot be *returned*").
    fn done(self) -> &'static str {
        match self {
            Self::Cancel => "cancelled",
            Self::Release => "released",
            Self::Return => "returned",
            Self::Dispense => "dispensed",
            Self::NotDispensed => "marked not dispensed",
            Self::Withdraw => "withdrawn",
            Self::Claim => "claimed",
        }
    }

    /// The action as a verb, for messages ("FCG71 cannot *return* it").
    fn verb(self) -> &'static str {
        match self {
            Self::Cancel => "cancel",
            Self::Release => "release",
            Self::Return => "return",
            Self::Dispense => "dispense",
            Self::NotDispensed => "mark not dispensed",
            Self::Withdraw => "withdraw",
            Self::Claim => "claim",
        }
    }
}

impl EpsAction {
    /// The action without its details.
    pub fn kind(&self) -> EpsActionKind {
        match self {
            Self::Cancel { .. } => EpsActionKind::Cancel,
            Self::Release { .. } => EpsActionKind::Release,
            Self::Return { .. } => EpsActionKind::Return,
            Self::Dispense { .. } => EpsActionKind::Dispense,
            Self::NotDispensed { .. } => EpsActionKind::NotDispensed,
            Self::Withdraw { .. } => EpsActionKind::Withdraw,
            Self::Claim { .. } => EpsActionKind::Claim,
        }
    }

    /// The organisation acting: the prescriber's for a cancellation, else the pharmacy.
    pub fn organisation(&self) -> &OdsCode {
        match self {
            Self::Cancel { organisation } => organisation,
            Self::Release { pharmacy }
            | Self::Return { pharmacy }
            | Self::Dispense { pharmacy, .. }
            | Self::NotDispensed { pharmacy }
            | Self::Withdraw { pharmacy }
            | Self::Claim { pharmacy } => pharmacy,
        }
    }
}

/// Why an action was refused, in the terms of the specification's error codes.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum EpsErrorCode {
    /// Not possible in the prescription's status.
    InvalidStateTransition,
    /// Another pharmacy holds the prescription.
    WithAnotherDispenser,
    /// A dispense notification names an item the prescription does not have.
    ItemNotFound,
    /// A value in the request is wrong (a quantity, or the organisation cancelling).
    InvalidValue,
}

impl EpsErrorCode {
    /// The specification's code, as sent on the wire.
    pub fn wire_code(self) -> &'static str {
        match self {
            Self::InvalidStateTransition => "PRESCRIPTION_INVALID_STATE_TRANSITION",
            Self::WithAnotherDispenser => "PRESCRIPTION_WITH_ANOTHER_DISPENSER",
            Self::ItemNotFound => "ITEM_NOT_FOUND",
            Self::InvalidValue => "INVALID_VALUE",
        }
    }
}

/// A refused action: the code, and a message naming the prescription, its status and what was
/// asked.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, thiserror::Error)]
#[error("{}: {message}", code.wire_code())]
pub struct EpsRefusal {
    /// Why, as a code.
    pub code: EpsErrorCode,
    /// Why, for people.
    pub message: String,
}

fn refuse(code: EpsErrorCode, message: String) -> EpsRefusal {
    EpsRefusal { code, message }
}

/// `status`, with the dispenser when there is one (`0002 With Dispenser at FCG71`).
fn describe(prescription: &Prescription, status: PrescriptionStatus) -> String {
    match (&prescription.dispenser, status.has_dispenser()) {
        (Some(dispenser), true) => format!("{status} at {dispenser}"),
        _ => status.to_string(),
    }
}

/// The refusal for an action the status does not allow; `allowed` names the statuses that do.
fn wrong_status(
    prescription: &Prescription,
    status: PrescriptionStatus,
    kind: EpsActionKind,
    allowed: &str,
) -> EpsRefusal {
    refuse(
        EpsErrorCode::InvalidStateTransition,
        format!(
            "prescription {} is {}; only {allowed} can be {}",
            prescription.id,
            describe(prescription, status),
            kind.done()
        ),
    )
}

/// The next version of `prescription` after `action` at `now_ms`, or why not. See the module
/// documentation for the rules.
pub fn apply(
    prescription: &Prescription,
    action: &EpsAction,
    now_ms: u64,
) -> Result<Prescription, EpsRefusal> {
    let status = prescription.effective_status(now_ms);
    let kind = action.kind();
    let by = action.organisation();
    let id = prescription.id;
    if kind == EpsActionKind::Cancel && *by != prescription.organisation {
        return Err(refuse(
            EpsErrorCode::InvalidValue,
            format!(
                "prescription {id} was issued by {}; {by} cannot cancel it",
                prescription.organisation
            ),
        ));
    }
    if status.is_terminal() {
        let expired = if prescription.is_expired(now_ms) {
            format!(" (not dispensed within {EXPIRY_DAYS} days of issue)")
        } else {
            String::new()
        };
        return Err(refuse(
            EpsErrorCode::InvalidStateTransition,
            format!(
                "prescription {id} is {}{expired}, which accepts no further action; it cannot be {}",
                describe(prescription, status),
                kind.done()
            ),
        ));
    }
    if kind != EpsActionKind::Cancel
        && status.is_held_by_dispenser()
        && prescription.dispenser.as_ref() != Some(by)
    {
        return Err(refuse(
            EpsErrorCode::WithAnotherDispenser,
            format!(
                "prescription {id} is {}; {by} cannot {} it",
                describe(prescription, status),
                kind.verb()
            ),
        ));
    }
    let mut next = prescription.clone();
    match action {
        EpsAction::Cancel { .. } => cancel(&mut next, status)?,
        EpsAction::Release { pharmacy } => release(&mut next, status, pharmacy)?,
        EpsAction::Return { .. } => return_to_spine(&mut next, status)?,
        EpsAction::Dispense { lines, .. } => dispense(&mut next, status, lines)?,
        EpsAction::NotDispensed { .. } => not_dispensed(&mut next, status)?,
        EpsAction::Withdraw { .. } => withdraw(&mut next, status)?,
        EpsAction::Claim { .. } => claim(&mut next, status)?,
    }
    next.version = prescription.version.wrapping_add(1);
    if next.history.len() == HISTORY_MAX {
        next.history.remove(0);
    }
    next.history.push(StatusChange {
        action: kind,
        from: status,
        to: next.status,
        by: Some(by.clone()),
        at_ms: now_ms,
    });
    Ok(next)
}

fn cancel(next: &mut Prescription, status: PrescriptionStatus) -> Result<(), EpsRefusal> {
    match status {
        ToBeDispensed => next.status = Cancelled,
        WithDispenser | WithDispenserActive if next.cancellation_pending => {
            return Err(refuse(
                EpsErrorCode::InvalidStateTransition,
                format!(
                    "prescription {} is {} and already marked for cancellation; it cannot be cancelled again",
                    next.id,
                    describe(next, status)
                ),
            ));
        }
        WithDispenser | WithDispenserActive => next.cancellation_pending = true,
        _ => {
            return Err(wrong_status(
                next,
                status,
                EpsActionKind::Cancel,
                "0001 (or 0002/0003, pending)",
            ));
        }
    }
    Ok(())
}

fn release(
    next: &mut Prescription,
    status: PrescriptionStatus,
    pharmacy: &OdsCode,
) -> Result<(), EpsRefusal> {
    if status != ToBeDispensed {
        let already = if status.is_held_by_dispenser() {
            " already"
        } else {
            ""
        };
        return Err(refuse(
            EpsErrorCode::InvalidStateTransition,
            format!(
                "prescription {} is{already} {}; only 0001 can be released",
                next.id,
                describe(next, status)
            ),
        ));
    }
    next.status = WithDispenser;
    next.dispenser = Some(pharmacy.clone());
    Ok(())
}

/// Sets every item's supplied quantity back to 0.
fn clear_dispensed(next: &mut Prescription) {
    for item in &mut next.items {
        item.dispensed = 0;
    }
}

fn return_to_spine(next: &mut Prescription, status: PrescriptionStatus) -> Result<(), EpsRefusal> {
    if !matches!(status, WithDispenser | WithDispenserActive) {
        return Err(wrong_status(
            next,
            status,
            EpsActionKind::Return,
            "0002/0003",
        ));
    }
    next.status = if next.cancellation_pending {
        Cancelled
    } else {
        ToBeDispensed
    };
    next.dispenser = None;
    next.cancellation_pending = false;
    clear_dispensed(next);
    Ok(())
}

fn dispense(
    next: &mut Prescription,
    status: PrescriptionStatus,
    lines: &[(usize, u32)],
) -> Result<(), EpsRefusal> {
    if !matches!(status, WithDispenser | WithDispenserActive) {
        return Err(wrong_status(
            next,
            status,
            EpsActionKind::Dispense,
            "0002/0003",
        ));
    }
    let id = next.id;
    if lines.is_empty() {
        return Err(refuse(
            EpsErrorCode::InvalidValue,
            format!("dispense notification for prescription {id} names no items"),
        ));
    }
    let items = next.items.len();
    for &(index, quantity) in lines {
        let item = next.items.get_mut(index).ok_or_else(|| {
            refuse(
                EpsErrorCode::ItemNotFound,
                format!(
                    "prescription {id} has {items} items (indexes 0 to {}); there is no item index {index}",
                    items - 1
                ),
            )
        })?;
        if quantity == 0 {
            return Err(refuse(
                EpsErrorCode::InvalidValue,
                format!(
                    "prescription {id}, item index {index}: a quantity supplied must be at least 1"
                ),
            ));
        }
        let total = u64::from(item.dispensed) + u64::from(quantity);
        if total > u64::from(item.quantity) {
            return Err(refuse(
                EpsErrorCode::InvalidValue,
                format!(
                    "prescription {id}, item index {index}: {quantity} more would make {total} supplied, more than the {} prescribed ({} supplied so far)",
                    item.quantity, item.dispensed
                ),
            ));
        }
        // At most `item.quantity`, a u32.
        item.dispensed = total as u32;
    }
    next.status = if next.is_fully_dispensed() {
        Dispensed
    } else {
        WithDispenserActive
    };
    next.cancellation_pending = false;
    Ok(())
}

fn not_dispensed(next: &mut Prescription, status: PrescriptionStatus) -> Result<(), EpsRefusal> {
    if !matches!(status, WithDispenser | WithDispenserActive) {
        return Err(wrong_status(
            next,
            status,
            EpsActionKind::NotDispensed,
            "0002/0003",
        ));
    }
    if next.items.iter().any(|item| item.dispensed > 0) {
        return Err(refuse(
            EpsErrorCode::InvalidStateTransition,
            format!(
                "prescription {} is {} with items supplied; only one with nothing supplied can be marked not dispensed (withdraw the dispense notifications first)",
                next.id,
                describe(next, status)
            ),
        ));
    }
    next.status = NotDispensed;
    next.cancellation_pending = false;
    Ok(())
}

fn withdraw(next: &mut Prescription, status: PrescriptionStatus) -> Result<(), EpsRefusal> {
    if !matches!(status, WithDispenserActive | Dispensed | NotDispensed) {
        return Err(wrong_status(
            next,
            status,
            EpsActionKind::Withdraw,
            "0003/0006/0007",
        ));
    }
    next.status = WithDispenser;
    clear_dispensed(next);
    Ok(())
}

fn claim(next: &mut Prescription, status: PrescriptionStatus) -> Result<(), EpsRefusal> {
    next.status = match status {
        Dispensed => Claimed,
        NotDispensed => NotClaimed,
        _ => {
            return Err(wrong_status(
                next,
                status,
                EpsActionKind::Claim,
                "0006/0007",
            ));
        }
    };
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::eps::prescription::EXPIRY_MS;
    use crate::eps::prescription::tests::issued;

    fn ods(code: &str) -> OdsCode {
        code.parse().unwrap()
    }
    fn release(pharmacy: &str) -> EpsAction {
        EpsAction::Release {
            pharmacy: ods(pharmacy),
        }
    }
    fn give_back(pharmacy: &str) -> EpsAction {
        EpsAction::Return {
            pharmacy: ods(pharmacy),
        }
    }
    fn dispense(pharmacy: &str, lines: &[(usize, u32)]) -> EpsAction {
        EpsAction::Dispense {
            pharmacy: ods(pharmacy),
            lines: lines.to_vec(),
        }
    }
    fn not_dispensed(pharmacy: &str) -> EpsAction {
        EpsAction::NotDispensed {
            pharmacy: ods(pharmacy),
        }
    }
    fn withdraw(pharmacy: &str) -> EpsAction {
        EpsAction::Withdraw {
            pharmacy: ods(pharmacy),
        }
    }
    fn claim(pharmacy: &str) -> EpsAction {
        EpsAction::Claim {
            pharmacy: ods(pharmacy),
        }
    }
    fn cancel(organisation: &str) -> EpsAction {
        EpsAction::Cancel {
            organisation: ods(organisation),
        }
    }

    /// Applies `actions` in turn at time 1, panicking on a refusal.
    fn after(quantities: &[u32], actions: &[EpsAction]) -> Prescription {
        actions.iter().fold(issued(quantities), |p, action| {
            apply(&p, action, 1).unwrap_or_else(|refusal| panic!("{action:?}: {refusal}"))
        })
    }

    /// The refusal of `action`, checking that it is one.
    fn refused(p: &Prescription, action: &EpsAction) -> EpsRefusal {
        apply(p, action, 1).unwrap_err()
    }

    const ID: &str = "04F4C2-A99968-7F717P";

    #[test]
    fn the_whole_life_of_a_prescription() {
        let p = after(
            &[21, 14],
            &[
                release("FCG71"),
                dispense("FCG71", &[(0, 21)]),
                dispense("FCG71", &[(1, 10), (1, 4)]),
                claim("FCG71"),
            ],
        );
        assert_eq!(p.status, Claimed);
        assert_eq!(p.dispenser, Some(ods("FCG71")));
        assert_eq!(p.version, 5);
        let steps: Vec<_> = p.history.iter().map(|c| (c.action, c.from, c.to)).collect();
        assert_eq!(
            steps,
            [
                (EpsActionKind::Release, ToBeDispensed, WithDispenser),
                (EpsActionKind::Dispense, WithDispenser, WithDispenserActive),
                (EpsActionKind::Dispense, WithDispenserActive, Dispensed),
                (EpsActionKind::Claim, Dispensed, Claimed),
            ]
        );
        assert!(p.history.iter().all(|c| c.by == Some(ods("FCG71"))));
        assert_eq!(p.validate(), Ok(()));
    }

    #[test]
    fn cancel_before_release_and_pending_after() {
        let p = after(&[1], &[cancel("A99968")]);
        assert_eq!((p.status, p.version), (Cancelled, 2));
        let refusal = refused(&issued(&[1]), &cancel("A83008"));
        assert_eq!(refusal.code, EpsErrorCode::InvalidValue);
        assert_eq!(
            refusal.message,
            format!("prescription {ID} was issued by A99968; A83008 cannot cancel it")
        );

        let pending = after(&[1], &[release("FCG71"), cancel("A99968")]);
        assert_eq!(pending.status, WithDispenser);
        assert!(pending.cancellation_pending);
        assert_eq!(
            refused(&pending, &cancel("A99968")).message,
            format!(
                "prescription {ID} is 0002 With Dispenser at FCG71 and already marked for cancellation; it cannot be cancelled again"
            )
        );
        // Returned while pending: cancelled.
        let returned = apply(&pending, &give_back("FCG71"), 1).unwrap();
        assert_eq!(
            (
                returned.status,
                returned.dispenser,
                returned.cancellation_pending
            ),
            (Cancelled, None, false)
        );
        // Dispensed while pending: too late, the cancellation lapses.
        let dispensed = apply(&pending, &dispense("FCG71", &[(0, 1)]), 1).unwrap();
        assert_eq!(
            (dispensed.status, dispensed.cancellation_pending),
            (Dispensed, false)
        );
        assert_eq!(
            refused(&dispensed, &cancel("A99968")).message,
            format!(
                "prescription {ID} is 0006 Dispensed at FCG71; only 0001 (or 0002/0003, pending) can be cancelled"
            )
        );
    }

    #[test]
    fn release_and_the_other_dispenser() {
        let p = after(&[1], &[release("FCG71")]);
        assert_eq!(
            (p.status, p.dispenser.clone()),
            (WithDispenser, Some(ods("FCG71")))
        );
        let refusal = refused(&p, &release("FA565"));
        assert_eq!(refusal.code, EpsErrorCode::WithAnotherDispenser);
        assert_eq!(
            refusal.message,
            format!("prescription {ID} is 0002 With Dispenser at FCG71; FA565 cannot release it")
        );
        let refusal = refused(&p, &release("FCG71"));
        assert_eq!(refusal.code, EpsErrorCode::InvalidStateTransition);
        assert_eq!(
            refusal.message,
            format!(
                "prescription {ID} is already 0002 With Dispenser at FCG71; only 0001 can be released"
            )
        );
        // The other dispenser is refused as such whatever it asks, before any status rule.
        for action in [
            give_back("FA565"),
            dispense("FA565", &[(9, 9)]),
            not_dispensed("FA565"),
            withdraw("FA565"),
            claim("FA565"),
        ] {
            assert_eq!(
                refused(&p, &action).code,
                EpsErrorCode::WithAnotherDispenser,
                "{action:?}"
            );
        }
        let dispensed = apply(&p, &dispense("FCG71", &[(0, 1)]), 1).unwrap();
        assert_eq!(
            refused(&dispensed, &release("FA565")).code,
            EpsErrorCode::WithAnotherDispenser
        );
    }

    #[test]
    fn return_resets_for_another_pharmacy() {
        let p = after(
            &[10, 5],
            &[
                release("FCG71"),
                dispense("FCG71", &[(0, 3)]),
                give_back("FCG71"),
            ],
        );
        assert_eq!((p.status, p.dispenser.clone()), (ToBeDispensed, None));
        assert!(p.items.iter().all(|item| item.dispensed == 0));
        let p = apply(&p, &release("FA565"), 1).unwrap();
        assert_eq!(p.dispenser, Some(ods("FA565")));
        let done = after(&[1], &[release("FCG71"), dispense("FCG71", &[(0, 1)])]);
        assert_eq!(
            refused(&done, &give_back("FCG71")).message,
            format!("prescription {ID} is 0006 Dispensed at FCG71; only 0002/0003 can be returned")
        );
        assert_eq!(
            refused(&issued(&[1]), &give_back("FCG71")).message,
            format!("prescription {ID} is 0001 To Be Dispensed; only 0002/0003 can be returned")
        );
    }

    #[test]
    fn dispense_checks_items_and_quantities() {
        let p = after(&[10, 5], &[release("FCG71")]);
        let refusal = refused(&p, &dispense("FCG71", &[(0, 1), (2, 1)]));
        assert_eq!(refusal.code, EpsErrorCode::ItemNotFound);
        assert_eq!(
            refusal.message,
            format!("prescription {ID} has 2 items (indexes 0 to 1); there is no item index 2")
        );
        let refusal = refused(&p, &dispense("FCG71", &[(1, 3), (1, 3)]));
        assert_eq!(refusal.code, EpsErrorCode::InvalidValue);
        assert_eq!(
            refusal.message,
            format!(
                "prescription {ID}, item index 1: 3 more would make 6 supplied, more than the 5 prescribed (3 supplied so far)"
            )
        );
        assert_eq!(
            refused(&p, &dispense("FCG71", &[(0, u32::MAX)])).code,
            EpsErrorCode::InvalidValue
        );
        assert_eq!(
            refused(&p, &dispense("FCG71", &[(0, 0)])).code,
            EpsErrorCode::InvalidValue
        );
        assert_eq!(
            refused(&p, &dispense("FCG71", &[])).message,
            format!("dispense notification for prescription {ID} names no items")
        );
        let partial = apply(&p, &dispense("FCG71", &[(0, 10), (1, 4)]), 1).unwrap();
        assert_eq!(partial.status, WithDispenserActive);
        let full = apply(&partial, &dispense("FCG71", &[(1, 1)]), 1).unwrap();
        assert_eq!(full.status, Dispensed);
        assert_eq!(
            refused(&full, &dispense("FCG71", &[(1, 1)])).message,
            format!(
                "prescription {ID} is 0006 Dispensed at FCG71; only 0002/0003 can be dispensed"
            )
        );
        assert_eq!(
            refused(&issued(&[1]), &dispense("FCG71", &[(0, 1)])).code,
            EpsErrorCode::InvalidStateTransition
        );
    }

    #[test]
    fn not_dispensed_withdraw_and_claim() {
        let nothing = after(&[2], &[release("FCG71"), not_dispensed("FCG71")]);
        assert_eq!(nothing.status, NotDispensed);
        let withdrawn = apply(&nothing, &withdraw("FCG71"), 1).unwrap();
        assert_eq!(withdrawn.status, WithDispenser);
        assert_eq!(
            apply(&nothing, &claim("FCG71"), 1).unwrap().status,
            NotClaimed
        );

        let partial = after(&[2], &[release("FCG71"), dispense("FCG71", &[(0, 1)])]);
        assert_eq!(
            refused(&partial, &not_dispensed("FCG71")).message,
            format!(
                "prescription {ID} is 0003 With Dispenser - Active at FCG71 with items supplied; only one with nothing supplied can be marked not dispensed (withdraw the dispense notifications first)"
            )
        );
        let withdrawn = apply(&partial, &withdraw("FCG71"), 1).unwrap();
        assert_eq!(withdrawn.status, WithDispenser);
        assert_eq!(withdrawn.items[0].dispensed, 0);
        assert_eq!(
            refused(&withdrawn, &withdraw("FCG71")).message,
            format!(
                "prescription {ID} is 0002 With Dispenser at FCG71; only 0003/0006/0007 can be withdrawn"
            )
        );
        assert_eq!(
            refused(&partial, &claim("FCG71")).message,
            format!(
                "prescription {ID} is 0003 With Dispenser - Active at FCG71; only 0006/0007 can be claimed"
            )
        );
        let claimed = after(
            &[1],
            &[
                release("FCG71"),
                dispense("FCG71", &[(0, 1)]),
                claim("FCG71"),
            ],
        );
        let refusal = refused(&claimed, &withdraw("FCG71"));
        assert_eq!(refusal.code, EpsErrorCode::InvalidStateTransition);
        assert_eq!(
            refusal.message,
            format!(
                "prescription {ID} is 0008 Claimed at FCG71, which accepts no further action; it cannot be withdrawn"
            )
        );
        // Claimed is terminal for everyone, the other pharmacy included.
        assert_eq!(
            refused(&claimed, &release("FA565")).code,
            EpsErrorCode::InvalidStateTransition
        );
    }

    #[test]
    fn expiry_refuses_everything_naming_0004() {
        let p = after(&[1], &[release("FCG71")]);
        let late = EXPIRY_MS + 1;
        for action in [
            cancel("A99968"),
            give_back("FCG71"),
            release("FA565"),
            dispense("FCG71", &[(0, 1)]),
        ] {
            let refusal = apply(&p, &action, late).unwrap_err();
            assert_eq!(refusal.code, EpsErrorCode::InvalidStateTransition);
            assert!(
                refusal
                    .message
                    .contains("is 0004 Expired (not dispensed within 180 days of issue)"),
                "{}",
                refusal.message
            );
        }
        assert!(apply(&p, &give_back("FCG71"), EXPIRY_MS).is_ok());
        // Once supplying has started, it no longer expires.
        let partial = after(&[2], &[release("FCG71"), dispense("FCG71", &[(0, 1)])]);
        assert!(apply(&partial, &dispense("FCG71", &[(0, 1)]), late).is_ok());
        // A wrong organisation's cancellation is refused as such, expired or not.
        assert_eq!(
            apply(&p, &cancel("A83008"), late).unwrap_err().code,
            EpsErrorCode::InvalidValue
        );
    }

    #[test]
    fn history_keeps_the_latest_entries() {
        let mut p = after(&[1], &[release("FCG71")]);
        for step in 0..40u64 {
            let action = if step % 2 == 0 {
                not_dispensed("FCG71")
            } else {
                withdraw("FCG71")
            };
            p = apply(&p, &action, step).unwrap();
        }
        assert_eq!(p.version, 42);
        assert_eq!(p.history.len(), HISTORY_MAX);
        assert_eq!(p.history.last().map(|c| c.at_ms), Some(39));
        assert_eq!(p.history.first().map(|c| c.at_ms), Some(8));
        assert_eq!(p.validate(), Ok(()));
    }

    #[test]
    fn refusals_display_with_the_wire_code() {
        let refusal = refused(&issued(&[1]), &claim("FCG71"));
        assert_eq!(
            refusal.to_string(),
            format!(
                "PRESCRIPTION_INVALID_STATE_TRANSITION: prescription {ID} is 0001 To Be Dispensed; only 0006/0007 can be claimed"
            )
        );
    }
}
