//! Enrollment: redeem one-time tokens. The only service without a bearer
//! credential: the token itself is the proof.

use super::{auth, now};
use crate::error::Error;
use crate::state::{Controller, DeviceEnrollment};
use crate::validate;
use porta_proto::PublicKey;
use porta_proto::pb::{self, enrollment_server::Enrollment};
use tonic::{Request, Response, Status};

/// The Enrollment service.
pub struct EnrollmentApi(pub(super) Controller);

#[tonic::async_trait]
impl Enrollment for EnrollmentApi {
    #[tracing::instrument(skip_all, fields(peer = ?request.remote_addr()))]
    async fn enroll(
        &self,
        request: Request<pb::EnrollRequest>,
    ) -> Result<Response<pb::EnrollResponse>, Status> {
        let address = super::auth::address_of(&request);
        let source = request.remote_addr();
        auth::admit(&self.0, source)?;
        let r = request.into_inner();
        let key: PublicKey = r
            .public_key
            .parse()
            .map_err(|e| Error::invalid(format!("public_key: {e}")))?;
        let hostname = validate::hostname(&r.hostname)?;
        let os = validate::device_text("os", &r.os)?;
        let attempt = validate::enrollment_attempt(&r.attempt)?;
        let request = DeviceEnrollment {
            token: &r.token,
            public_key: key,
            hostname: &hostname,
            os: &os,
            attempt,
        };
        let enrolled = self.0.enroll(&request, &address, now()).await;
        let (device, credential) =
            auth::note_outcome(&self.0, source, &r.token, "invitation", enrolled)?;
        let config = self.0.device_config(&device.id)?;
        Ok(Response::new(pb::EnrollResponse {
            config: Some(config),
            credential,
        }))
    }

    #[tracing::instrument(skip_all, fields(peer = ?request.remote_addr()))]
    async fn preview_invitation(
        &self,
        request: Request<pb::PreviewInvitationRequest>,
    ) -> Result<Response<pb::PreviewInvitationResponse>, Status> {
        let source = request.remote_addr();
        auth::admit(&self.0, source)?;
        let token = request.into_inner().token;
        let previewed = self.0.preview_invitation(&token, now());
        let (invite, person) =
            auth::note_outcome(&self.0, source, &token, "invitation", previewed)?;
        let crate::store::records::InvitePurpose::Device { device_name, .. } = invite.purpose
        else {
            return Err(Error::invalid("not a device invitation").into());
        };
        Ok(Response::new(pb::PreviewInvitationResponse {
            user: person.name,
            display_name: person.display_name,
            device_name,
            expires_at: invite.expires_at,
        }))
    }

    #[tracing::instrument(skip_all, fields(peer = ?request.remote_addr()))]
    async fn login(
        &self,
        request: Request<pb::LoginRequest>,
    ) -> Result<Response<pb::LoginResponse>, Status> {
        let address = super::auth::address_of(&request);
        let source = request.remote_addr();
        auth::admit(&self.0, source)?;
        let r = request.into_inner();
        let client_name = validate::text("client_name", &r.client_name)?;
        let logged_in = self.0.login(&r.token, &client_name, &address, now()).await;
        let (credential, secret) =
            auth::note_outcome(&self.0, source, &r.token, "invitation", logged_in)?;
        tracing::info!(name = %credential.name, role = credential.role.as_str(), "credential activated");
        Ok(Response::new(pb::LoginResponse {
            credential: secret,
            role: pb::Role::from(credential.role) as i32,
            name: credential.name,
            credential_id: credential.id,
        }))
    }
}
