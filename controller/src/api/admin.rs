//! Admin: users, groups, enrollment tokens, devices, credentials, gateways.
//! Every RPC here is for the admin role only.

use super::auth::{ADMIN, AUDIT, authorize};
use super::now;
use crate::error::Error;
use crate::logs::Actor;
use crate::state::Controller;
use crate::store::records::{GroupRecord, InvitePurpose, Role, UserRecord};
use crate::validate;
use porta_proto::pb::{self, admin_server::Admin};
use tonic::{Request, Response, Status};

/// The Admin service.
pub struct AdminApi(pub(super) Controller);

type Reply<T> = Result<Response<T>, Status>;

fn names(field: &str, values: &[String]) -> Result<Vec<String>, Error> {
    values.iter().map(|v| validate::name(field, v)).collect()
}

/// A language code for messages: "" (the town's default) or one Porta
/// writes in.
fn language(value: &str) -> Result<String, Error> {
    let code = value.trim().to_ascii_lowercase();
    if code.is_empty() || crate::mail::LANGUAGES.contains(&code.as_str()) {
        Ok(code)
    } else {
        Err(Error::invalid(format!(
            "language {value:?} is not one of ca, es, it, en"
        )))
    }
}

#[tonic::async_trait]
impl Admin for AdminApi {
    async fn create_user(&self, request: Request<pb::CreateUserRequest>) -> Reply<pb::User> {
        let caller = authorize(&self.0, &request, "add users", ADMIN)?;
        let r = request.into_inner();
        let user = UserRecord {
            name: validate::name("user", &r.name)?,
            display_name: validate::text("display_name", &r.display_name)?,
            email: validate::text("email", &r.email)?,
            disabled: false,
            groups: names("group", &r.groups)?.into_iter().collect(),
            created_at: now(),
            language: language(&r.language)?,
            directory: None,
        };
        let user = self.0.create_user(&Actor::from(&caller), user).await?;
        tracing::info!(user = %user.name, by = %caller.name, "user created");
        Ok(Response::new(pb::User::from(user)))
    }

    async fn list_users(
        &self,
        request: Request<pb::ListUsersRequest>,
    ) -> Reply<pb::ListUsersResponse> {
        authorize(&self.0, &request, "list users", ADMIN)?;
        let users = self
            .0
            .list_users()?
            .into_iter()
            .map(pb::User::from)
            .collect();
        Ok(Response::new(pb::ListUsersResponse { users }))
    }

    async fn get_user(&self, request: Request<pb::GetUserRequest>) -> Reply<pb::User> {
        authorize(&self.0, &request, "look up users", ADMIN)?;
        Ok(Response::new(pb::User::from(
            self.0.user(&request.into_inner().name)?,
        )))
    }

    async fn set_user_disabled(
        &self,
        request: Request<pb::SetUserDisabledRequest>,
    ) -> Reply<pb::User> {
        let caller = authorize(&self.0, &request, "disable or enable users", ADMIN)?;
        let r = request.into_inner();
        let user = self
            .0
            .set_user_disabled(&Actor::from(&caller), &r.name, r.disabled, now())
            .await?;
        tracing::info!(user = %user.name, disabled = r.disabled, by = %caller.name, "user state changed");
        Ok(Response::new(pb::User::from(user)))
    }

    async fn create_group(&self, request: Request<pb::CreateGroupRequest>) -> Reply<pb::Group> {
        let caller = authorize(&self.0, &request, "create groups", ADMIN)?;
        let r = request.into_inner();
        let group = GroupRecord {
            name: validate::name("group", &r.name)?,
            description: validate::text("description", &r.description)?,
            destinations: Vec::new(),
            created_at: now(),
        };
        let created = self.0.create_group(&Actor::from(&caller), group).await?;
        Ok(Response::new(created.into_pb(Vec::new())))
    }

    async fn list_groups(
        &self,
        request: Request<pb::ListGroupsRequest>,
    ) -> Reply<pb::ListGroupsResponse> {
        authorize(&self.0, &request, "list groups", ADMIN)?;
        let groups = self
            .0
            .list_groups()?
            .into_iter()
            .map(|(g, m)| g.into_pb(m))
            .collect();
        Ok(Response::new(pb::ListGroupsResponse { groups }))
    }

    async fn get_group(&self, request: Request<pb::GetGroupRequest>) -> Reply<pb::Group> {
        authorize(&self.0, &request, "look up groups", ADMIN)?;
        let (group, members) = self.0.group(&request.into_inner().name)?;
        Ok(Response::new(group.into_pb(members)))
    }

    async fn delete_group(
        &self,
        request: Request<pb::DeleteGroupRequest>,
    ) -> Reply<pb::DeleteGroupResponse> {
        let caller = authorize(&self.0, &request, "delete groups", ADMIN)?;
        self.0
            .delete_group(&Actor::from(&caller), &request.into_inner().name, now())
            .await?;
        Ok(Response::new(pb::DeleteGroupResponse {}))
    }

    async fn allow_destination(
        &self,
        request: Request<pb::AllowDestinationRequest>,
    ) -> Reply<pb::AllowDestinationResponse> {
        let caller = authorize(&self.0, &request, "change what groups may reach", ADMIN)?;
        let r = request.into_inner();
        let destination = validate::destination(r.destination.as_ref())?;
        let mut warnings = self.0.own_addresses_in(&destination.cidr)?;
        if let Some(route) = crate::policy::covering_route(self.0.settings(), &destination.cidr) {
            warnings.push(format!(
                "{} is inside {route}, a town-wide route (init --route) that every device \
                 reaches whatever its groups: this rule restricts nothing. To restrict it, \
                 drop that route at init and allow it per group",
                destination.cidr
            ));
        }
        self.0
            .allow_destination(&Actor::from(&caller), &r.group, destination, now())
            .await?;
        let (group, members) = self.0.group(&r.group)?;
        Ok(Response::new(pb::AllowDestinationResponse {
            group: Some(group.into_pb(members)),
            warnings,
        }))
    }

    async fn disallow_destination(
        &self,
        request: Request<pb::DisallowDestinationRequest>,
    ) -> Reply<pb::Group> {
        let caller = authorize(&self.0, &request, "change what groups may reach", ADMIN)?;
        let r = request.into_inner();
        let destination = validate::destination(r.destination.as_ref())?;
        self.0
            .disallow_destination(&Actor::from(&caller), &r.group, destination, now())
            .await?;
        let (group, members) = self.0.group(&r.group)?;
        Ok(Response::new(group.into_pb(members)))
    }

    async fn add_group_members(
        &self,
        request: Request<pb::GroupMembersRequest>,
    ) -> Reply<pb::Group> {
        let caller = authorize(&self.0, &request, "change group members", ADMIN)?;
        let r = request.into_inner();
        self.0
            .set_membership(&Actor::from(&caller), &r.group, &r.users, true, now())
            .await?;
        let (group, members) = self.0.group(&r.group)?;
        Ok(Response::new(group.into_pb(members)))
    }

    async fn remove_group_members(
        &self,
        request: Request<pb::GroupMembersRequest>,
    ) -> Reply<pb::Group> {
        let caller = authorize(&self.0, &request, "change group members", ADMIN)?;
        let r = request.into_inner();
        self.0
            .set_membership(&Actor::from(&caller), &r.group, &r.users, false, now())
            .await?;
        let (group, members) = self.0.group(&r.group)?;
        Ok(Response::new(group.into_pb(members)))
    }

    async fn create_enrollment_token(
        &self,
        request: Request<pb::CreateEnrollmentTokenRequest>,
    ) -> Reply<pb::CreateEnrollmentTokenResponse> {
        let caller = authorize(&self.0, &request, "enroll devices", ADMIN)?;
        let r = request.into_inner();
        let device_name = validate::name("device_name", &r.device_name)?;
        let gateway = Some(r.gateway.as_str()).filter(|g| !g.is_empty());
        if r.email {
            self.0.check_can_email(&r.user)?;
        }
        let actor = Actor::from(&caller);
        let (token, invitation) = self
            .0
            .create_enrollment_token(&actor, &r.user, &device_name, gateway, r.ttl_seconds, now())
            .await?;
        tracing::info!(user = %r.user, device = %device_name, by = %caller.name, "enrollment token created");
        let email = if r.email {
            Some(
                self.0
                    .email_invitation(&actor, &token, &invitation, now())
                    .await?,
            )
        } else {
            None
        };
        let ready_to_send = self.0.ready_to_send(&token, &invitation)?;
        Ok(Response::new(pb::CreateEnrollmentTokenResponse {
            token: Some(pb::EnrollmentToken::from(token)),
            invitation,
            email,
            ready_to_send,
        }))
    }

    async fn resend_enrollment_token(
        &self,
        request: Request<pb::ResendEnrollmentTokenRequest>,
    ) -> Reply<pb::ResendEnrollmentTokenResponse> {
        let caller = authorize(&self.0, &request, "e-mail invitations", ADMIN)?;
        let r = request.into_inner();
        let actor = Actor::from(&caller);
        let token = self.0.open_enrollment_token(&r.id, now())?;
        if let InvitePurpose::Device { user, .. } = &token.purpose {
            self.0.check_can_email(user)?;
        }
        let presented = Some(r.invitation.as_str()).filter(|i| !i.is_empty());
        let (token, invitation) = self
            .0
            .reissue_enrollment_token(&actor, &r.id, presented, now())
            .await?;
        let email = self
            .0
            .email_invitation(&actor, &token, &invitation, now())
            .await?;
        let token = self.0.open_enrollment_token(&token.id, now())?;
        Ok(Response::new(pb::ResendEnrollmentTokenResponse {
            token: Some(pb::EnrollmentToken::from(token)),
            invitation,
            email: Some(email),
        }))
    }

    async fn list_enrollment_tokens(
        &self,
        request: Request<pb::ListEnrollmentTokensRequest>,
    ) -> Reply<pb::ListEnrollmentTokensResponse> {
        authorize(&self.0, &request, "list enrollment tokens", ADMIN)?;
        let tokens = self
            .0
            .list_enrollment_tokens(now())?
            .into_iter()
            .map(pb::EnrollmentToken::from)
            .collect();
        Ok(Response::new(pb::ListEnrollmentTokensResponse { tokens }))
    }

    async fn delete_enrollment_token(
        &self,
        request: Request<pb::DeleteEnrollmentTokenRequest>,
    ) -> Reply<pb::DeleteEnrollmentTokenResponse> {
        let caller = authorize(&self.0, &request, "revoke enrollment tokens", ADMIN)?;
        self.0
            .delete_enrollment_token(&Actor::from(&caller), &request.into_inner().id, now())
            .await?;
        Ok(Response::new(pb::DeleteEnrollmentTokenResponse {}))
    }

    async fn list_devices(
        &self,
        request: Request<pb::ListDevicesRequest>,
    ) -> Reply<pb::ListDevicesResponse> {
        authorize(&self.0, &request, "list devices", AUDIT)?;
        let r = request.into_inner();
        let user = (!r.user.is_empty()).then_some(r.user.as_str());
        let devices = self
            .0
            .list_devices(user, r.include_revoked)?
            .into_iter()
            .map(pb::DeviceInfo::from)
            .collect();
        Ok(Response::new(pb::ListDevicesResponse { devices }))
    }

    async fn get_device(&self, request: Request<pb::GetDeviceRequest>) -> Reply<pb::DeviceInfo> {
        authorize(&self.0, &request, "look up devices", AUDIT)?;
        let device = self.0.find_device(&request.into_inner().name)?;
        let reach = self.0.device_reach(&device)?;
        Ok(Response::new(pb::DeviceInfo {
            reach,
            ..pb::DeviceInfo::from(device)
        }))
    }

    async fn rename_device(
        &self,
        request: Request<pb::RenameDeviceRequest>,
    ) -> Reply<pb::DeviceInfo> {
        let caller = authorize(&self.0, &request, "rename devices", ADMIN)?;
        let r = request.into_inner();
        let new_name = validate::name("new_name", &r.new_name)?;
        Ok(Response::new(pb::DeviceInfo::from(
            self.0
                .rename_device(&Actor::from(&caller), &r.name, &new_name, now())
                .await?,
        )))
    }

    async fn revoke_device(
        &self,
        request: Request<pb::RevokeDeviceRequest>,
    ) -> Reply<pb::RevokeDeviceResponse> {
        let caller = authorize(&self.0, &request, "revoke devices", ADMIN)?;
        let started = std::time::Instant::now();
        let device = self
            .0
            .revoke_device(&Actor::from(&caller), &request.into_inner().name, now())
            .await?;
        // Wait (at most 10 s) until the gateways have dropped its peer.
        let (confirmed_gateways, pending_gateways) = self
            .0
            .wait_for_gateways(self.0.revision(), std::time::Duration::from_secs(10))
            .await?;
        self.0
            .metrics()
            .revoked(pending_gateways.is_empty().then(|| started.elapsed()));
        let not_following_gateways = self.0.not_following(&pending_gateways)?;
        Ok(Response::new(pb::RevokeDeviceResponse {
            device: Some(pb::DeviceInfo::from(device)),
            confirmed_gateways,
            pending_gateways,
            not_following_gateways,
        }))
    }

    async fn create_api_credential(
        &self,
        request: Request<pb::CreateApiCredentialRequest>,
    ) -> Reply<pb::CreateApiCredentialResponse> {
        let caller = authorize(&self.0, &request, "create admin or auditor logins", ADMIN)?;
        let r = request.into_inner();
        let name = validate::name("name", &r.name)?;
        let role = match pb::Role::try_from(r.role) {
            Ok(pb::Role::Admin) => Role::Admin,
            Ok(pb::Role::Auditor) => Role::Auditor,
            _ => return Err(Error::invalid("role must be ROLE_ADMIN or ROLE_AUDITOR").into()),
        };
        let (credential, invitation) = self
            .0
            .create_api_credential(&Actor::from(&caller), &name, role, r.ttl_seconds, now())
            .await?;
        tracing::info!(name = %name, role = role.as_str(), by = %caller.name, "API credential created");
        Ok(Response::new(pb::CreateApiCredentialResponse {
            credential: Some(pb::ApiCredential::from(credential)),
            invitation,
        }))
    }

    async fn list_api_credentials(
        &self,
        request: Request<pb::ListApiCredentialsRequest>,
    ) -> Reply<pb::ListApiCredentialsResponse> {
        authorize(&self.0, &request, "list admin and auditor logins", ADMIN)?;
        let r = request.into_inner();
        let credentials = self
            .0
            .list_api_credentials(r.include_revoked)?
            .into_iter()
            .map(pb::ApiCredential::from)
            .collect();
        Ok(Response::new(pb::ListApiCredentialsResponse {
            credentials,
        }))
    }

    async fn revoke_api_credential(
        &self,
        request: Request<pb::RevokeApiCredentialRequest>,
    ) -> Reply<pb::RevokeApiCredentialResponse> {
        let caller = authorize(&self.0, &request, "revoke admin or auditor logins", ADMIN)?;
        let credential = self
            .0
            .revoke_api_credential(&Actor::from(&caller), &request.into_inner().id, now())
            .await?;
        tracing::info!(name = %credential.name, by = %caller.name, "API credential revoked");
        Ok(Response::new(pb::RevokeApiCredentialResponse {
            credential: Some(pb::ApiCredential::from(credential)),
        }))
    }

    async fn list_gateways(
        &self,
        request: Request<pb::ListGatewaysRequest>,
    ) -> Reply<pb::ListGatewaysResponse> {
        authorize(&self.0, &request, "list gateways", ADMIN)?;
        let gateways = self
            .0
            .list_gateways()?
            .into_iter()
            .map(pb::GatewayInfo::from)
            .collect();
        Ok(Response::new(pb::ListGatewaysResponse { gateways }))
    }

    async fn remove_gateway(
        &self,
        request: Request<pb::RemoveGatewayRequest>,
    ) -> Reply<pb::RemoveGatewayResponse> {
        let caller = authorize(&self.0, &request, "remove gateways", ADMIN)?;
        let name = request.into_inner().name;
        let gateway = self
            .0
            .remove_gateway(&Actor::from(&caller), &name, now())
            .await?;
        Ok(Response::new(pb::RemoveGatewayResponse {
            gateway: Some(pb::GatewayInfo::from(gateway)),
        }))
    }

    async fn resync_gateway(
        &self,
        request: Request<pb::ResyncGatewayRequest>,
    ) -> Reply<pb::ResyncGatewayResponse> {
        let caller = authorize(&self.0, &request, "resync gateways", ADMIN)?;
        let name = request.into_inner().name;
        let gateway = self
            .0
            .resync_gateway(&Actor::from(&caller), &name, now())
            .await?;
        Ok(Response::new(pb::ResyncGatewayResponse {
            gateway: Some(pb::GatewayInfo::from(gateway)),
        }))
    }

    async fn create_gateway(
        &self,
        request: Request<pb::CreateGatewayRequest>,
    ) -> Reply<pb::CreateGatewayResponse> {
        let caller = authorize(&self.0, &request, "add gateways", ADMIN)?;
        let r = request.into_inner();
        let name = validate::name("name", &r.name)?;
        let endpoint = validate::endpoint("endpoint", &r.endpoint)?;
        let (gateway, invitation) = self
            .0
            .create_gateway(
                &Actor::from(&caller),
                &name,
                &endpoint,
                r.ttl_seconds,
                now(),
            )
            .await?;
        Ok(Response::new(pb::CreateGatewayResponse {
            gateway: Some(pb::GatewayInfo::from(gateway)),
            invitation,
        }))
    }
}
