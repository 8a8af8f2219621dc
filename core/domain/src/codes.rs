//! The domain's code lists and each value's number, fixed here once for every format that
//! carries a code as a number: the `spine/1` request schema (`net/PROTOCOL.md`) and the log's
//! records (`core/RECORDS.md`) both use these numbers, and golden bytes pin them in both.
//!
//! A number is the value's identity, not its place in the Rust enum: reordering the enum
//! changes nothing stored or sent, and a variant the table leaves out does not compile. A
//! number is never changed or reused; a new value takes the next number.

use crate::eps::{EpsActionKind, PrescriptionStatus};
use crate::ers::Priority;
use crate::pds::patient::{
    AddressUse, ContactSystem, ContactUse, DeathNotificationStatus, Gender, NameUse,
};
use crate::request::ErrorCode;
use crate::scr::record::ScrPermission;

/// A domain enum without fields that formats carry as its number in a code list.
pub trait CodeList: Copy + Sized + 'static {
    /// The list's name, as the documents and refusals give it (`gender`).
    const NAME: &'static str;
    /// Every value's number and name, in number order.
    const VALUES: &'static [(u32, &'static str)];

    /// The value's number.
    fn index(self) -> u32;

    /// The value numbered `index`; `None` for a number the list does not hold.
    fn try_from_index(index: u32) -> Option<Self>;

    /// The list as a refusal states it: `0 Male, 1 Female, 2 Other, 3 Unknown`.
    fn listing() -> String {
        let values: Vec<String> = Self::VALUES
            .iter()
            .map(|(index, name)| format!("{index} {name}"))
            .collect();
        values.join(", ")
    }
}

/// Implements [`CodeList`] for `$domain`, named `$name`, with exactly the numbers given.
macro_rules! code_list {
    ($domain:ident, $name:literal, { $($index:literal => $variant:ident),+ $(,)? }) => {
        impl CodeList for $domain {
            const NAME: &'static str = $name;
            const VALUES: &'static [(u32, &'static str)] = &[$(($index, stringify!($variant))),+];

            fn index(self) -> u32 {
                match self {
                    $($domain::$variant => $index,)+
                }
            }

            fn try_from_index(index: u32) -> Option<Self> {
                match index {
                    $($index => Some($domain::$variant),)+
                    _ => None,
                }
            }
        }
    };
}

code_list!(NameUse, "name_use", { 0 => Usual, 1 => Temp, 2 => Nickname, 3 => Old, 4 => Maiden });
code_list!(Gender, "gender", { 0 => Male, 1 => Female, 2 => Other, 3 => Unknown });
code_list!(DeathNotificationStatus, "death_notification", { 0 => Informal, 1 => Formal });
code_list!(AddressUse, "address_use", { 0 => Home, 1 => Work, 2 => Temp, 3 => Billing });
code_list!(ContactSystem, "contact_system", { 0 => Phone, 1 => Fax, 2 => Email, 3 => Other });
code_list!(ContactUse, "contact_use", { 0 => Home, 1 => Work, 2 => Temp, 3 => Mobile });
code_list!(ScrPermission, "scr_permission", { 0 => Ask, 1 => No });
code_list!(Priority, "priority", { 0 => Routine, 1 => Urgent, 2 => TwoWeekWait });
code_list!(PrescriptionStatus, "prescription_status", {
    0 => ToBeDispensed, 1 => WithDispenser, 2 => WithDispenserActive, 3 => Expired,
    4 => Cancelled, 5 => Dispensed, 6 => NotDispensed, 7 => Claimed, 8 => NotClaimed,
});
code_list!(EpsActionKind, "eps_action", {
    0 => Cancel, 1 => Release, 2 => Return, 3 => Dispense, 4 => NotDispensed, 5 => Withdraw,
    6 => Claim,
});
code_list!(ErrorCode, "error_code", {
    0 => AccessDenied, 1 => ResourceNotFound, 2 => ResourceVersionMismatch, 3 => ForbiddenUpdate,
    4 => InvalidValue, 5 => InvalidSearchData, 6 => TooManyMatches, 7 => SingleMatch,
    8 => MultipleMatches, 9 => RequestIdReused, 10 => ServiceUnavailable,
    11 => MalformedRequest, 12 => FrameTooLarge, 13 => TooManyStreams, 14 => RateLimited,
    15 => DeadlineExceeded, 16 => NoPatientConsent, 17 => PrescriptionNotFound,
    18 => PrescriptionInvalidStateTransition, 19 => PrescriptionWithAnotherDispenser,
    20 => ItemNotFound, 21 => ReferenceNotFound, 22 => InvalidRequestState,
    23 => SlotNotAvailable, 24 => InappropriateSlot, 25 => SlotsCurrentlyAvailable,
    26 => ServiceNotOnShortlist, 27 => ChunkConflict, 28 => DocumentIncomplete,
    29 => DocumentHashMismatch, 30 => WritesStopped, 31 => InvalidResourceId,
});

#[cfg(test)]
mod tests {
    use super::*;

    fn numbered_in_order<T: CodeList + PartialEq + std::fmt::Debug>() {
        for (position, &(index, _)) in T::VALUES.iter().enumerate() {
            assert_eq!(
                index as usize,
                position,
                "{} numbers from 0, in order",
                T::NAME
            );
            let value = T::try_from_index(index).expect("in the list");
            assert_eq!(value.index(), index, "{value:?}");
        }
        let past = u32::try_from(T::VALUES.len()).expect("a short list");
        assert_eq!(T::try_from_index(past), None, "{}", T::NAME);
        assert_eq!(T::try_from_index(u32::MAX), None, "{}", T::NAME);
    }

    #[test]
    fn every_number_round_trips_and_the_next_one_is_no_value() {
        numbered_in_order::<NameUse>();
        numbered_in_order::<Gender>();
        numbered_in_order::<DeathNotificationStatus>();
        numbered_in_order::<AddressUse>();
        numbered_in_order::<ContactSystem>();
        numbered_in_order::<ContactUse>();
        numbered_in_order::<ScrPermission>();
        numbered_in_order::<Priority>();
        numbered_in_order::<PrescriptionStatus>();
        numbered_in_order::<EpsActionKind>();
        numbered_in_order::<ErrorCode>();
        // The wire's error codes are the same numbers (`ErrorCode::ALL` is their order).
        for (position, code) in ErrorCode::ALL.iter().enumerate() {
            assert_eq!(code.index() as usize, position, "{code:?}");
        }
        assert_eq!(Gender::listing(), "0 Male, 1 Female, 2 Other, 3 Unknown");
    }
}
