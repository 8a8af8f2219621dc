//! Who may see and change a Summary Care Record.
//!
//! A view needs, besides the role's `scr-view` activity:
//! - a legitimate relationship: the patient is registered at the user's organisation, or the
//!   user claims one (a self-claimed relationship, alerted to the privacy officer);
//! - the patient's permission to view, asked at the point of care and declared in the request.
//!
//! Emergency access with a reason stands in for both, and alerts the privacy officer. A change
//! (the summary or the consent preference) is made only by the registered practice: there is
//! no emergency route to writing someone else's summary.

use crate::access::{AccessError, Justification, REASON_BYTES_MAX, RoleProfile};
use crate::audit::event::AccessAlert;
use crate::pds::values::OdsCode;

/// Checks a view; returns the alert it raises (with its reason), if any.
pub fn check_view<'a>(
    profile: &RoleProfile,
    registered_at: Option<&OdsCode>,
    permission_to_view: bool,
    justification: &'a Justification,
) -> Result<Option<(AccessAlert, &'a str)>, AccessError> {
    let justified = justification.alert();
    if let Some((_, reason)) = justified
        && (reason.trim().is_empty() || reason.len() > REASON_BYTES_MAX)
    {
        return Err(AccessError::BadReason);
    }
    let emergency = matches!(justified, Some((AccessAlert::EmergencyAccess, _)));
    let related = registered_at == Some(&profile.organisation);
    if !related && justified.is_none() {
        return Err(AccessError::NoLegitimateRelationship {
            organisation: profile.organisation.to_string(),
        });
    }
    if !permission_to_view && !emergency {
        return Err(AccessError::NoPermissionToView);
    }
    // An unneeded self-claim on a registered patient raises nothing; emergency access always
    // does, because it is what lets a view skip the patient's permission.
    Ok(match justified {
        Some((AccessAlert::SelfClaimedRelationship, _)) if related => None,
        other => other,
    })
}

/// Checks a change: only the registered practice.
pub fn check_change(
    profile: &RoleProfile,
    registered_at: Option<&OdsCode>,
) -> Result<(), AccessError> {
    if registered_at == Some(&profile.organisation) {
        return Ok(());
    }
    Err(AccessError::NotRegisteredPractice {
        registered_at: registered_at
            .map_or_else(|| "no practice".to_owned(), |code| code.to_string()),
        organisation: profile.organisation.to_string(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn profile(organisation: &str) -> RoleProfile {
        RoleProfile {
            id: "p".into(),
            role: "Clinician".into(),
            organisation: organisation.parse().expect("code"),
            activities: Vec::new(),
        }
    }

    #[test]
    fn views_need_a_relationship_and_permission_unless_in_an_emergency() {
        let gp = profile("Y90001");
        let practice: OdsCode = "Y90001".parse().expect("code");
        let elsewhere: OdsCode = "Y90002".parse().expect("code");
        let none = Justification::None;
        assert_eq!(check_view(&gp, Some(&practice), true, &none), Ok(None));
        assert_eq!(
            check_view(&gp, Some(&practice), false, &none),
            Err(AccessError::NoPermissionToView)
        );
        assert!(matches!(
            check_view(&gp, Some(&elsewhere), true, &none),
            Err(AccessError::NoLegitimateRelationship { .. })
        ));
        let claimed = Justification::SelfClaimed {
            reason: "covering the patient's care today".into(),
        };
        assert_eq!(
            check_view(&gp, Some(&elsewhere), true, &claimed),
            Ok(Some((
                AccessAlert::SelfClaimedRelationship,
                "covering the patient's care today"
            )))
        );
        assert_eq!(
            check_view(&gp, Some(&elsewhere), false, &claimed),
            Err(AccessError::NoPermissionToView),
            "a self-claimed relationship does not stand in for the patient's permission"
        );
        let emergency = Justification::Emergency {
            reason: "unconscious".into(),
        };
        assert_eq!(
            check_view(&gp, None, false, &emergency),
            Ok(Some((AccessAlert::EmergencyAccess, "unconscious")))
        );
        let blank = Justification::Emergency { reason: " ".into() };
        assert_eq!(
            check_view(&gp, None, false, &blank),
            Err(AccessError::BadReason)
        );
    }

    #[test]
    fn only_the_registered_practice_changes_a_summary() {
        let gp = profile("Y90001");
        let practice: OdsCode = "Y90001".parse().expect("code");
        assert_eq!(check_change(&gp, Some(&practice)), Ok(()));
        let error = check_change(&profile("Y9H01"), Some(&practice)).expect_err("hospital");
        assert_eq!(
            error.to_string(),
            "only the patient's registered practice may do this; the patient is registered at \
             Y90001, not Y9H01"
        );
        assert!(check_change(&gp, None).is_err());
    }
}
