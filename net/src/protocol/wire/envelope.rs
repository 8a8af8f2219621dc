//! `WireRequest` as it travels: who asks, why, within what time, and the operation.

use std::borrow::Cow;

use serde::{Deserialize, Serialize};
use spine_domain::access;
use uuid::Uuid;

use super::InvalidField;
use super::invalid_field::{Checked, Within};
use super::operation::Operation;
use super::values::{self, text};
use crate::protocol::message::WireRequest;

/// A request body, field for field (`net/PROTOCOL.md`, "Request").
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct Request<'a> {
    /// Chosen by the client; what a refusal is answered on.
    pub id: Uuid,
    user: Uuid,
    role_profile: Cow<'a, str>,
    organisation: Cow<'a, str>,
    justification: Justification<'a>,
    deadline_ms: u32,
    operation: Operation<'a>,
}

/// `Justification`: why access outside a legitimate relationship is justified, if it is.
#[derive(Clone, Debug, Serialize, Deserialize)]
enum Justification<'a> {
    None,
    SelfClaimed { reason: Cow<'a, str> },
    Emergency { reason: Cow<'a, str> },
}

impl<'a> From<&'a WireRequest> for Request<'a> {
    fn from(request: &'a WireRequest) -> Self {
        Self {
            id: request.id,
            user: request.user,
            role_profile: text(&request.role_profile),
            organisation: text(&request.organisation),
            justification: match &request.justification {
                access::Justification::None => Justification::None,
                access::Justification::SelfClaimed { reason } => Justification::SelfClaimed {
                    reason: text(reason),
                },
                access::Justification::Emergency { reason } => Justification::Emergency {
                    reason: text(reason),
                },
            },
            deadline_ms: request.deadline_ms,
            operation: (&request.operation).into(),
        }
    }
}

impl Request<'_> {
    /// The request in the domain's types, every value checked in the order it travels; the
    /// first refused is returned, naming its path from the request's top.
    pub fn into_domain(self) -> Result<WireRequest, InvalidField> {
        self.checked().map_err(|refused| *refused)
    }

    fn checked(self) -> Checked<WireRequest> {
        let justification = match self.justification {
            Justification::None => access::Justification::None,
            Justification::SelfClaimed { reason } => access::Justification::SelfClaimed {
                reason: reason.into_owned(),
            },
            Justification::Emergency { reason } => access::Justification::Emergency {
                reason: reason.into_owned(),
            },
        };
        Ok(WireRequest {
            id: self.id,
            user: self.user,
            role_profile: self.role_profile.into_owned(),
            organisation: values::ods_code(self.organisation).at("organisation")?,
            justification,
            deadline_ms: self.deadline_ms,
            operation: self.operation.into_domain().at("operation")?,
        })
    }
}

impl TryFrom<Request<'_>> for WireRequest {
    type Error = InvalidField;

    fn try_from(request: Request<'_>) -> Result<Self, Self::Error> {
        request.into_domain()
    }
}
