//! Access control: who may do what (sans-IO).
//!
//! A [`Directory`] lists the organisations (ODS codes), the users (UUIDs) with their role
//! profiles (a role at an organisation, granting activities) and the connecting systems (ASIDs)
//! with the activities each may request. Every operation names its [`Activity`]; [`Directory::
//! authorise`] allows it only when the system, the user and the user's role profile all grant it.
//!
//! Changing a patient's record also needs a legitimate relationship: the patient is registered
//! at the user's organisation. Without one the user may still go ahead by claiming a
//! relationship or declaring emergency access, with a reason; both are allowed and raise an
//! alert for the privacy officer (see [`Justification`]).

pub mod directory_file;

use std::collections::HashMap;

use serde::{Deserialize, Serialize};
use uuid::Uuid;

use crate::audit::event::AccessAlert;
use crate::pds::values::OdsCode;

/// Something a role profile may do. Names follow the operations they allow.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Activity {
    /// Read a patient's demographic record by NHS number.
    PdsRetrieve,
    /// Search (trace) for patients.
    PdsSearch,
    /// Register a new patient (allocating an NHS number).
    PdsCreate,
    /// Change a patient's demographic record.
    PdsUpdate,
    /// Record a death.
    PdsDeathNotification,
    /// Read the audit trail and the privacy alerts (privacy officers).
    AuditView,
    /// View a patient's Summary Care Record (with a legitimate relationship and the patient's
    /// permission to view, or emergency access).
    ScrView,
    /// Change a Summary Care Record or the patient's consent to it (registered practice only).
    ScrUpdate,
    /// Issue and cancel prescriptions (prescribers).
    EpsPrescribe,
    /// Release, return, dispense, withdraw and claim prescriptions (pharmacies).
    EpsDispense,
    /// Refer patients, search for free slots, book, rebook, cancel and defer (referrers).
    ErsRefer,
    /// Publish e-RS services and their appointment slots (providers).
    ErsProvide,
    /// Send a patient's GP record to their new practice, and receive one (GP practices).
    Gp2gp,
}

impl Activity {
    /// Every activity.
    pub const ALL: [Activity; 13] = [
        Activity::PdsRetrieve,
        Activity::PdsSearch,
        Activity::PdsCreate,
        Activity::PdsUpdate,
        Activity::PdsDeathNotification,
        Activity::AuditView,
        Activity::ScrView,
        Activity::ScrUpdate,
        Activity::EpsPrescribe,
        Activity::EpsDispense,
        Activity::ErsRefer,
        Activity::ErsProvide,
        Activity::Gp2gp,
    ];

    /// The activity's name as the directory file spells it.
    pub fn name(self) -> &'static str {
        match self {
            Activity::PdsRetrieve => "pds-retrieve",
            Activity::PdsSearch => "pds-search",
            Activity::PdsCreate => "pds-create",
            Activity::PdsUpdate => "pds-update",
            Activity::PdsDeathNotification => "pds-death-notification",
            Activity::AuditView => "audit-view",
            Activity::ScrView => "scr-view",
            Activity::ScrUpdate => "scr-update",
            Activity::EpsPrescribe => "eps-prescribe",
            Activity::EpsDispense => "eps-dispense",
            Activity::ErsRefer => "ers-refer",
            Activity::ErsProvide => "ers-provide",
            Activity::Gp2gp => "gp2gp",
        }
    }
}

/// An organisation: a GP practice, trust, pharmacy or the like.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Organisation {
    /// ODS code.
    pub code: OdsCode,
    /// Name.
    pub name: String,
}

/// A role a user holds at an organisation, and the activities it grants.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct RoleProfile {
    /// Identifier, unique among the user's profiles (what a request names).
    pub id: String,
    /// The job role, for people (for example "General Medical Practitioner").
    pub role: String,
    /// Where the role is held.
    pub organisation: OdsCode,
    /// What the role may do.
    pub activities: Vec<Activity>,
}

/// A person who uses the Spine.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct User {
    /// The user's identifier.
    pub id: Uuid,
    /// Name, for people.
    pub name: String,
    /// The roles the user holds.
    pub role_profiles: Vec<RoleProfile>,
}

/// A connecting system (a supplier's application), identified by its ASID.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct System {
    /// Accredited System ID.
    pub asid: u64,
    /// Name.
    pub name: String,
    /// The organisation that runs it.
    pub organisation: OdsCode,
    /// What it may request.
    pub activities: Vec<Activity>,
    /// SHA-256 fingerprints (lower-case hex) of the client certificates it connects with.
    #[serde(default)]
    pub certificates: Vec<String>,
}

/// Who is asking: the end user, the role profile they act in, and the connecting system.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Caller {
    /// The end user.
    pub user: Uuid,
    /// The role profile the user acts in.
    pub role_profile: String,
    /// The organisation the user says they act for; when given, it must be where the role
    /// profile is held.
    pub organisation: Option<OdsCode>,
    /// The connecting system.
    pub asid: u64,
}

/// Why access outside a legitimate relationship is justified.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub enum Justification {
    /// None given: the usual rules apply.
    #[default]
    None,
    /// The user states a relationship the Spine does not know of.
    SelfClaimed {
        /// The stated relationship.
        reason: String,
    },
    /// Emergency access, overriding the relationship check.
    Emergency {
        /// The stated reason.
        reason: String,
    },
}

impl Justification {
    /// The alert it raises and the reason, if any.
    pub fn alert(&self) -> Option<(AccessAlert, &str)> {
        match self {
            Justification::None => None,
            Justification::SelfClaimed { reason } => {
                Some((AccessAlert::SelfClaimedRelationship, reason))
            }
            Justification::Emergency { reason } => Some((AccessAlert::EmergencyAccess, reason)),
        }
    }
}

/// Longest justification reason, in bytes.
pub const REASON_BYTES_MAX: usize = 512;

/// Why access was refused (`ACCESS_DENIED`); each says exactly what failed.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum AccessError {
    /// The ASID is not in the directory.
    #[error("system {0} is not registered")]
    UnknownSystem(u64),
    /// The system may not request this activity.
    #[error("system {asid} is not allowed to request {activity}")]
    SystemNotAllowed {
        /// The system.
        asid: u64,
        /// The activity.
        activity: &'static str,
    },
    /// The user is not in the directory.
    #[error("user {0} is not registered")]
    UnknownUser(Uuid),
    /// The user holds no such role profile.
    #[error("user {user} has no role profile {role_profile:?}")]
    UnknownRoleProfile {
        /// The user.
        user: Uuid,
        /// The profile named.
        role_profile: String,
    },
    /// The organisation named is not where the role profile is held.
    #[error("role profile {role_profile:?} is held at {held_at}, not {named}")]
    OrganisationMismatch {
        /// The profile.
        role_profile: String,
        /// Where it is held.
        held_at: String,
        /// The organisation the request named.
        named: String,
    },
    /// The role profile does not grant the activity.
    #[error("role profile {role_profile:?} does not grant {activity}")]
    ActivityNotGranted {
        /// The profile.
        role_profile: String,
        /// The activity.
        activity: &'static str,
    },
    /// No legitimate relationship with the patient, and no justification given.
    #[error(
        "no legitimate relationship: the patient is not registered at {organisation}; claim a \
         relationship or declare emergency access with a reason"
    )]
    NoLegitimateRelationship {
        /// The user's organisation.
        organisation: String,
    },
    /// A justification without a usable reason.
    #[error("a justification needs a reason of 1 to {REASON_BYTES_MAX} bytes")]
    BadReason,
    /// A Summary Care Record view without the patient's permission to view, and no
    /// emergency access declared.
    #[error(
        "the patient's permission to view their Summary Care Record was not recorded; ask the \
         patient, or declare emergency access with a reason"
    )]
    NoPermissionToView,
    /// Only the patient's registered practice may change this.
    #[error(
        "only the patient's registered practice may do this; the patient is registered at \
         {registered_at}, not {organisation}"
    )]
    NotRegisteredPractice {
        /// Where the patient is registered ("no practice" when nowhere).
        registered_at: String,
        /// The user's organisation.
        organisation: String,
    },
}

/// The users, role profiles, organisations and systems the Spine knows.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Directory {
    /// Organisations.
    pub organisations: Vec<Organisation>,
    /// Users.
    pub users: Vec<User>,
    /// Connecting systems.
    pub systems: Vec<System>,
    #[serde(skip)]
    users_by_id: HashMap<Uuid, usize>,
    #[serde(skip)]
    systems_by_asid: HashMap<u64, usize>,
    #[serde(skip)]
    systems_by_certificate: HashMap<String, usize>,
}

/// A directory that contradicts itself.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum DirectoryError {
    /// Two entries share an identifier.
    #[error("{kind} {id} appears twice")]
    Duplicate {
        /// Users, systems, organisations or role profiles.
        kind: &'static str,
        /// The repeated identifier.
        id: String,
    },
    /// A reference to an organisation the directory does not hold.
    #[error("{holder} refers to unknown organisation {organisation}")]
    UnknownOrganisation {
        /// Who refers to it.
        holder: String,
        /// The code.
        organisation: String,
    },
}

impl Directory {
    /// Builds a directory, checking identifiers are unique and organisations exist.
    pub fn new(
        organisations: Vec<Organisation>,
        users: Vec<User>,
        systems: Vec<System>,
    ) -> Result<Self, DirectoryError> {
        let mut directory = Self {
            organisations,
            users,
            systems,
            ..Self::default()
        };
        directory.index()?;
        Ok(directory)
    }

    /// Builds the lookup tables and checks the directory is consistent (after deserialising).
    pub fn index(&mut self) -> Result<(), DirectoryError> {
        let duplicate = |kind, id: String| DirectoryError::Duplicate { kind, id };
        let mut codes = std::collections::HashSet::new();
        for organisation in &self.organisations {
            if !codes.insert(organisation.code.clone()) {
                return Err(duplicate("organisation", organisation.code.to_string()));
            }
        }
        let known = |holder: String, code: &OdsCode| {
            if codes.contains(code) {
                Ok(())
            } else {
                Err(DirectoryError::UnknownOrganisation {
                    holder,
                    organisation: code.to_string(),
                })
            }
        };
        self.users_by_id.clear();
        for (position, user) in self.users.iter().enumerate() {
            if self.users_by_id.insert(user.id, position).is_some() {
                return Err(duplicate("user", user.id.to_string()));
            }
            let mut profiles = std::collections::HashSet::new();
            for profile in &user.role_profiles {
                if !profiles.insert(profile.id.as_str()) {
                    return Err(duplicate("role profile", profile.id.clone()));
                }
                known(
                    format!("role profile {}", profile.id),
                    &profile.organisation,
                )?;
            }
        }
        self.systems_by_asid.clear();
        self.systems_by_certificate.clear();
        for (position, system) in self.systems.iter().enumerate() {
            if self.systems_by_asid.insert(system.asid, position).is_some() {
                return Err(duplicate("system", system.asid.to_string()));
            }
            for certificate in &system.certificates {
                let fingerprint = certificate.to_ascii_lowercase();
                if self
                    .systems_by_certificate
                    .insert(fingerprint, position)
                    .is_some()
                {
                    return Err(duplicate("certificate", certificate.clone()));
                }
            }
            known(format!("system {}", system.asid), &system.organisation)?;
        }
        Ok(())
    }

    /// The user with `id`.
    pub fn user(&self, id: Uuid) -> Option<&User> {
        self.users_by_id
            .get(&id)
            .map(|&position| &self.users[position])
    }

    /// The system with `asid`.
    pub fn system(&self, asid: u64) -> Option<&System> {
        self.systems_by_asid
            .get(&asid)
            .map(|&position| &self.systems[position])
    }

    /// The system that connects with the certificate of this SHA-256 fingerprint (hex).
    pub fn system_by_certificate(&self, fingerprint: &str) -> Option<&System> {
        self.systems_by_certificate
            .get(&fingerprint.to_ascii_lowercase())
            .map(|&position| &self.systems[position])
    }

    /// Allows `activity` for `caller` when the system, the user and the role profile grant it;
    /// returns the role profile the caller acts in.
    pub fn authorise(
        &self,
        caller: &Caller,
        activity: Activity,
    ) -> Result<&RoleProfile, AccessError> {
        let system = self
            .system(caller.asid)
            .ok_or(AccessError::UnknownSystem(caller.asid))?;
        if !system.activities.contains(&activity) {
            return Err(AccessError::SystemNotAllowed {
                asid: caller.asid,
                activity: activity.name(),
            });
        }
        let user = self
            .user(caller.user)
            .ok_or(AccessError::UnknownUser(caller.user))?;
        let profile = user
            .role_profiles
            .iter()
            .find(|profile| profile.id == caller.role_profile)
            .ok_or_else(|| AccessError::UnknownRoleProfile {
                user: caller.user,
                role_profile: caller.role_profile.clone(),
            })?;
        if let Some(named) = &caller.organisation
            && *named != profile.organisation
        {
            return Err(AccessError::OrganisationMismatch {
                role_profile: profile.id.clone(),
                held_at: profile.organisation.to_string(),
                named: named.to_string(),
            });
        }
        if !profile.activities.contains(&activity) {
            return Err(AccessError::ActivityNotGranted {
                role_profile: profile.id.clone(),
                activity: activity.name(),
            });
        }
        Ok(profile)
    }
}

/// Checks the legitimate relationship between `profile` and a patient registered at
/// `registered_at`: allowed when they match; otherwise allowed with an alert when justified.
/// Returns the alert to raise, if any.
pub fn check_relationship<'a>(
    profile: &RoleProfile,
    registered_at: Option<&OdsCode>,
    justification: &'a Justification,
) -> Result<Option<(AccessAlert, &'a str)>, AccessError> {
    if registered_at == Some(&profile.organisation) {
        return Ok(None);
    }
    match justification.alert() {
        None => Err(AccessError::NoLegitimateRelationship {
            organisation: profile.organisation.to_string(),
        }),
        Some((_, reason)) if reason.trim().is_empty() || reason.len() > REASON_BYTES_MAX => {
            Err(AccessError::BadReason)
        }
        Some(alert) => Ok(Some(alert)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn caller(directory: &Directory, user: usize, profile: usize) -> Caller {
        let user = &directory.users[user];
        Caller {
            user: user.id,
            role_profile: user.role_profiles[profile].id.clone(),
            organisation: Some(user.role_profiles[profile].organisation.clone()),
            asid: directory.systems[0].asid,
        }
    }

    #[test]
    fn the_demo_directory_is_consistent_and_grants_by_role() {
        let directory = directory_file::demo();
        let gp = caller(&directory, 0, 0);
        assert!(directory.authorise(&gp, Activity::PdsUpdate).is_ok());
        let privacy_officer = directory
            .users
            .iter()
            .position(|user| user.name.contains("Privacy"))
            .expect("a privacy officer");
        let officer = caller(&directory, privacy_officer, 0);
        assert!(directory.authorise(&officer, Activity::AuditView).is_ok());
        assert!(matches!(
            directory.authorise(&officer, Activity::PdsUpdate),
            Err(AccessError::ActivityNotGranted { .. })
        ));
        let mut stranger = gp.clone();
        stranger.user = Uuid::from_u128(7);
        assert_eq!(
            directory.authorise(&stranger, Activity::PdsRetrieve),
            Err(AccessError::UnknownUser(Uuid::from_u128(7)))
        );
        let mut unknown_system = gp.clone();
        unknown_system.asid = 1;
        assert_eq!(
            directory.authorise(&unknown_system, Activity::PdsRetrieve),
            Err(AccessError::UnknownSystem(1))
        );
        let mut elsewhere = gp.clone();
        elsewhere.organisation = Some("Y90002".parse().expect("code"));
        assert!(matches!(
            directory.authorise(&elsewhere, Activity::PdsRetrieve),
            Err(AccessError::OrganisationMismatch { .. })
        ));
        let mut wrong_profile = gp;
        wrong_profile.role_profile = "nope".into();
        assert!(matches!(
            directory.authorise(&wrong_profile, Activity::PdsRetrieve),
            Err(AccessError::UnknownRoleProfile { .. })
        ));
    }

    #[test]
    fn relationships_are_checked_and_justifications_alert() {
        let directory = directory_file::demo();
        let profile = &directory.users[0].role_profiles[0];
        let elsewhere: OdsCode = "ZZ9999".parse().expect("code");
        assert_eq!(
            check_relationship(profile, Some(&profile.organisation), &Justification::None),
            Ok(None)
        );
        assert!(matches!(
            check_relationship(profile, Some(&elsewhere), &Justification::None),
            Err(AccessError::NoLegitimateRelationship { .. })
        ));
        let emergency = Justification::Emergency {
            reason: "unconscious in A&E".into(),
        };
        assert_eq!(
            check_relationship(profile, None, &emergency),
            Ok(Some((AccessAlert::EmergencyAccess, "unconscious in A&E")))
        );
        let empty = Justification::SelfClaimed { reason: " ".into() };
        assert_eq!(
            check_relationship(profile, None, &empty),
            Err(AccessError::BadReason)
        );
    }

    #[test]
    fn inconsistent_directories_are_refused() {
        let mut directory = directory_file::demo();
        let first = directory.users[0].clone();
        directory.users.push(first);
        assert!(matches!(
            directory.index(),
            Err(DirectoryError::Duplicate { kind: "user", .. })
        ));
        let mut directory = directory_file::demo();
        directory.systems[0].organisation = "ZZ9999".parse().expect("code");
        assert!(matches!(
            directory.index(),
            Err(DirectoryError::UnknownOrganisation { .. })
        ));
    }
}
