//! Model-based test of the EPS state machine: random sequences of actions by three pharmacies
//! and two prescribing organisations, with time jumps across the 180-day expiry, applied both
//! to `spine_core::eps::apply` and to a deliberately simple reference model written here as a
//! table. At every step the two must agree on the outcome (accepted, or which error code) and
//! on the resulting status, dispenser, pending cancellation and supplied quantities; a refusal
//! must change nothing; an accepted action must add exactly 1 to the version; and supplied
//! quantities never exceed those prescribed.
#![allow(clippy::unwrap_used)] // Tests fail loudly on any unexpected error.

use proptest::prelude::*;
use spine_core::eps::prescription::EXPIRY_MS;
use spine_core::eps::{
    EpsAction, EpsErrorCode, NewLineItem, NewPrescription, Prescription, PrescriptionId, apply,
};

const PHARMACIES: [&str; 3] = ["FCG71", "FA565", "FH542"];
const PRESCRIBER_ORG: &str = "A99968";
const OTHER_ORG: &str = "A83008";
const ISSUED_AT: u64 = 1_700_000_000_000;
const HOUR_MS: u64 = 60 * 60 * 1000;
const DAY_MS: u64 = 24 * HOUR_MS;

/// An action, with pharmacies by index.
#[derive(Clone, Debug)]
enum Op {
    Cancel { by_prescriber: bool },
    Release(usize),
    Return(usize),
    Dispense(usize, Vec<(usize, u32)>),
    NotDispensed(usize),
    Withdraw(usize),
    Claim(usize),
}

impl Op {
    fn pharmacy(&self) -> Option<usize> {
        match *self {
            Op::Cancel { .. } => None,
            Op::Release(p)
            | Op::Return(p)
            | Op::Dispense(p, _)
            | Op::NotDispensed(p)
            | Op::Withdraw(p)
            | Op::Claim(p) => Some(p),
        }
    }

    fn to_action(&self) -> EpsAction {
        let ods = |code: &str| code.parse().unwrap();
        let pharmacy = |p: usize| ods(PHARMACIES[p]);
        match self {
            Op::Cancel { by_prescriber } => EpsAction::Cancel {
                organisation: ods(if *by_prescriber {
                    PRESCRIBER_ORG
                } else {
                    OTHER_ORG
                }),
            },
            Op::Release(p) => EpsAction::Release {
                pharmacy: pharmacy(*p),
            },
            Op::Return(p) => EpsAction::Return {
                pharmacy: pharmacy(*p),
            },
            Op::Dispense(p, lines) => EpsAction::Dispense {
                pharmacy: pharmacy(*p),
                lines: lines.clone(),
            },
            Op::NotDispensed(p) => EpsAction::NotDispensed {
                pharmacy: pharmacy(*p),
            },
            Op::Withdraw(p) => EpsAction::Withdraw {
                pharmacy: pharmacy(*p),
            },
            Op::Claim(p) => EpsAction::Claim {
                pharmacy: pharmacy(*p),
            },
        }
    }
}

/// The reference model: nothing but the facts the rules read.
#[derive(Clone, Debug, PartialEq)]
struct Model {
    status: &'static str,
    dispenser: Option<usize>,
    pending: bool,
    quantities: Vec<u32>,
    dispensed: Vec<u32>,
}

impl Model {
    fn effective_status(&self, now: u64) -> &'static str {
        let expires = matches!(self.status, "0001" | "0002");
        if expires && now - ISSUED_AT > 180 * DAY_MS {
            "0004"
        } else {
            self.status
        }
    }

    /// The rules, as a table over (status, action); anything not listed is refused as an
    /// invalid state transition.
    fn step(&self, op: &Op, now: u64) -> Result<Model, EpsErrorCode> {
        use EpsErrorCode::*;
        let status = self.effective_status(now);
        if let Op::Cancel {
            by_prescriber: false,
        } = op
        {
            return Err(InvalidValue);
        }
        if ["0004", "0005", "0008", "0009"].contains(&status) {
            return Err(InvalidStateTransition);
        }
        let held = ["0002", "0003", "0006", "0007"].contains(&status);
        if let Some(p) = op.pharmacy()
            && held
            && self.dispenser != Some(p)
        {
            return Err(WithAnotherDispenser);
        }
        let mut next = self.clone();
        let nothing_supplied = self.dispensed.iter().all(|&d| d == 0);
        match (status, op) {
            ("0001", Op::Cancel { .. }) => next.status = "0005",
            ("0002" | "0003", Op::Cancel { .. }) if !self.pending => next.pending = true,
            ("0001", Op::Release(p)) => {
                next.status = "0002";
                next.dispenser = Some(*p);
            }
            ("0002" | "0003", Op::Return(_)) => {
                next.status = if self.pending { "0005" } else { "0001" };
                next.dispenser = None;
                next.pending = false;
                next.dispensed = vec![0; self.quantities.len()];
            }
            ("0002" | "0003", Op::Dispense(_, lines)) => {
                if lines.is_empty() {
                    return Err(InvalidValue);
                }
                for &(item, quantity) in lines {
                    if item >= self.quantities.len() {
                        return Err(ItemNotFound);
                    }
                    if quantity == 0 || next.dispensed[item] + quantity > self.quantities[item] {
                        return Err(InvalidValue);
                    }
                    next.dispensed[item] += quantity;
                }
                next.status = if next.dispensed == self.quantities {
                    "0006"
                } else {
                    "0003"
                };
                next.pending = false;
            }
            ("0002" | "0003", Op::NotDispensed(_)) if nothing_supplied => {
                next.status = "0007";
                next.pending = false;
            }
            ("0003" | "0006" | "0007", Op::Withdraw(_)) => {
                next.status = "0002";
                next.dispensed = vec![0; self.quantities.len()];
            }
            ("0006", Op::Claim(_)) => next.status = "0008",
            ("0007", Op::Claim(_)) => next.status = "0009",
            _ => return Err(InvalidStateTransition),
        }
        Ok(next)
    }
}

fn op() -> impl Strategy<Value = Op> {
    let pharmacy = 0usize..PHARMACIES.len();
    // Item indexes up to 5 (past the 4 an item list may hold), quantities up to 3.
    let lines = prop::collection::vec((0usize..6, 0u32..4), 0..4);
    prop_oneof![
        1 => any::<bool>().prop_map(|by_prescriber| Op::Cancel { by_prescriber }),
        3 => pharmacy.clone().prop_map(Op::Release),
        1 => pharmacy.clone().prop_map(Op::Return),
        4 => (pharmacy.clone(), lines).prop_map(|(p, lines)| Op::Dispense(p, lines)),
        1 => pharmacy.clone().prop_map(Op::NotDispensed),
        1 => pharmacy.clone().prop_map(Op::Withdraw),
        2 => pharmacy.prop_map(Op::Claim),
    ]
}

/// Time passing before a step: mostly none, sometimes long enough to cross the expiry.
fn time_jump() -> impl Strategy<Value = u64> {
    prop_oneof![
        6 => Just(0),
        2 => Just(HOUR_MS),
        1 => Just(30 * DAY_MS),
        1 => Just(179 * DAY_MS),
        1 => Just(EXPIRY_MS + 1),
    ]
}

fn issue(quantities: &[u32]) -> Prescription {
    let item = |quantity| NewLineItem {
        code: "39732311000001104".parse().unwrap(),
        description: "Amoxicillin 250mg capsules".into(),
        quantity,
        unit: "capsule".into(),
        dosage: "One capsule three times a day".into(),
    };
    let new = NewPrescription {
        patient: "9000000009".parse().unwrap(),
        nominated_pharmacy: Some(PHARMACIES[0].parse().unwrap()),
        items: quantities.iter().map(|&q| item(q)).collect(),
    };
    let id = PrescriptionId::new(0x04F4C2, &PRESCRIBER_ORG.parse().unwrap(), 0x7F717).unwrap();
    Prescription::issue(
        new,
        id,
        uuid::Uuid::from_u128(1),
        PRESCRIBER_ORG.parse().unwrap(),
        ISSUED_AT,
    )
    .unwrap()
}

/// The facts of `prescription` in the model's terms.
fn observe(prescription: &Prescription) -> Model {
    Model {
        status: prescription.status.code(),
        dispenser: prescription
            .dispenser
            .as_ref()
            .map(|d| PHARMACIES.iter().position(|p| d.as_str() == *p).unwrap()),
        pending: prescription.cancellation_pending,
        quantities: prescription.items.iter().map(|i| i.quantity).collect(),
        dispensed: prescription.items.iter().map(|i| i.dispensed).collect(),
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    #[test]
    fn eps_apply_agrees_with_the_model(
        quantities in prop::collection::vec(1u32..4, 1..=4),
        steps in prop::collection::vec((time_jump(), op()), 1..60),
    ) {
        let mut real = issue(&quantities);
        let mut model = observe(&real);
        prop_assert_eq!(model.status, "0001");
        let mut now = ISSUED_AT;
        for (jump, op) in steps {
            now += jump;
            let before = real.clone();
            let outcome = apply(&real, &op.to_action(), now);
            let expected = model.step(&op, now);
            // The input is borrowed, so a refusal cannot have changed it; check anyway.
            prop_assert_eq!(&real, &before);
            match (outcome, expected) {
                (Ok(next), Ok(next_model)) => {
                    prop_assert_eq!(next.version, before.version + 1);
                    prop_assert_eq!(observe(&next), next_model.clone(), "{:?}", op);
                    let change = next.history.last().unwrap();
                    prop_assert_eq!(change.from.code(), model.effective_status(now));
                    prop_assert_eq!(change.to, next.status);
                    prop_assert_eq!(change.at_ms, now);
                    prop_assert!(next.history.len() <= 32);
                    real = next;
                    model = next_model;
                }
                (Err(refusal), Err(code)) => {
                    prop_assert_eq!(refusal.code, code, "{:?}: {}", op, refusal.message);
                    prop_assert!(refusal.message.contains(&real.id.to_string()));
                }
                (outcome, expected) => {
                    prop_assert!(false, "{:?} at {} from {:?}: real {:?}, model {:?}", op, now, model, outcome, expected);
                }
            }
            prop_assert_eq!(real.effective_status(now).code(), model.effective_status(now));
            // One dispenser at most, named exactly while the status has one.
            prop_assert_eq!(real.dispenser.is_some(), real.status.has_dispenser());
            prop_assert!(real.items.iter().all(|i| i.dispensed <= i.quantity));
            let payload = spine_core::shard::records::prescription::encode(&real);
            prop_assert_eq!(spine_core::shard::records::prescription::decode(&payload), Ok(real.clone()));
        }
    }
}
