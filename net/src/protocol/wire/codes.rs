//! The code lists of the request schema: each list's values and their indices on the wire,
//! written here once (`net/PROTOCOL.md` lists the same). An index the list does not hold is a
//! refused value, answered on its request, not bytes the server cannot read.

use spine_domain::ers::Priority;
use spine_domain::pds::patient::{
    AddressUse, ContactSystem, ContactUse, DeathNotificationStatus, Gender, NameUse,
};
use spine_domain::scr::record::ScrPermission;

use super::InvalidField;
use super::invalid_field::Checked;

/// A domain enum without fields, carried as the index of its value in a code list.
pub(super) trait CodeList: Sized {
    /// The value at `index`, or a refusal naming the list.
    fn from_index(index: u32) -> Checked<Self>;
    /// The value's index.
    fn index(&self) -> u32;
}

/// Implements [`CodeList`] for `$domain` (the field kind `$field` in refusals) with exactly the
/// indices given: a domain variant left out does not compile.
macro_rules! code_list {
    ($domain:ident, $field:literal, { $($index:literal => $variant:ident),+ $(,)? }) => {
        impl CodeList for $domain {
            fn from_index(index: u32) -> Checked<Self> {
                match index {
                    $($index => Ok($domain::$variant),)+
                    other => {
                        let values = [$(concat!(stringify!($index), " ", stringify!($variant))),+];
                        Err(InvalidField::value(
                            $field,
                            format_args!("{other} is not one of {}", values.join(", ")),
                        ))
                    }
                }
            }

            fn index(&self) -> u32 {
                match self {
                    $($domain::$variant => $index,)+
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

#[cfg(test)]
mod tests {
    use super::*;
    use spine_domain::request::ErrorCode;

    fn round_trips<T: CodeList + PartialEq + std::fmt::Debug>(count: u32) {
        for index in 0..count {
            let value = T::from_index(index).expect("in the list");
            assert_eq!(value.index(), index, "{value:?}");
        }
        let refused = T::from_index(count).expect_err("past the list");
        assert_eq!(refused.code, ErrorCode::InvalidValue);
        assert!(
            refused
                .reason
                .starts_with(&format!("{count} is not one of 0 ")),
            "{refused}"
        );
    }

    #[test]
    fn every_index_round_trips_and_the_next_one_is_refused() {
        round_trips::<NameUse>(5);
        round_trips::<Gender>(4);
        round_trips::<DeathNotificationStatus>(2);
        round_trips::<AddressUse>(4);
        round_trips::<ContactSystem>(4);
        round_trips::<ContactUse>(4);
        round_trips::<ScrPermission>(2);
        round_trips::<Priority>(3);
        assert_eq!(
            Gender::from_index(9).unwrap_err().to_string(),
            "gender: 9 is not one of 0 Male, 1 Female, 2 Other, 3 Unknown"
        );
    }
}
