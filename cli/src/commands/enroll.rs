//! enroll: one device, or a CSV of hundreds.
//!
//! A CSV run is resumable: every invitation is appended to `--out` (and
//! flushed) the moment it exists — it cannot be shown again — and a re-run
//! skips the rows whose user and device are already in `--out`; a row whose
//! invitation was created but never written there (the run died in
//! between) gets a new one, the lost one deleted. A bad row is reported and
//! the run goes on; a controller that stops answering stops the run.
//!
//! Rows are enrolled [`IN_FLIGHT`] at a time (each is a few RPCs, and each
//! RPC waits for the controller's durable write, which commits concurrent
//! writes together), one user's rows one after another in file order;
//! results are taken, written to `--out` and reported in file order. The
//! input may be what a spreadsheet saved: any separator and encoding
//! [`crate::spreadsheet`] knows; the output copies each row's
//! `display_name` and `email`, for mail merges.

use super::{Ctx, print_invitation};
use crate::args::EnrollArgs;
use crate::error::{RowsFailed, Usage};
use anyhow::{Context, Result, bail};
use porta_proto::connect::Authed;
use porta_proto::pb;
use porta_proto::pb::admin_client::AdminClient;
use serde::Deserialize;
use serde_json::json;
use std::collections::{BTreeSet, HashMap, HashSet, VecDeque};
use std::path::Path;
use std::sync::{Arc, Mutex};
use tonic::Code;

/// Rows of a CSV run being enrolled at once.
const IN_FLIGHT: usize = 32;

pub(super) async fn run(ctx: &Ctx, args: EnrollArgs) -> Result<()> {
    let ttl = args.expires.as_secs();
    if ttl < 60 {
        bail!(Usage("--expires must be at least 1m".into()));
    }
    match (&args.csv, &args.out, &args.user, &args.device) {
        (Some(csv), Some(out), _, _) => {
            bulk(ctx, csv, out, args.gateway.as_deref(), ttl, args.email).await
        }
        (None, None, Some(user), Some(device)) => {
            let row = Row {
                user: user.clone(),
                device: device.clone(),
                groups: args.groups.join(";"),
                gateway: args.gateway.clone().unwrap_or_default(),
                ..Row::default()
            };
            single(ctx, row, ttl, args.qr, args.email).await
        }
        _ => bail!(Usage("give --user and --device, or --csv and --out".into())),
    }
}

async fn single(ctx: &Ctx, row: Row, ttl: u64, qr: bool, email: bool) -> Result<()> {
    let (user, device) = (&row.user, &row.device);
    let mut admin = ctx.admin().await?;
    ensure_user(&mut admin, &row, None).await?;
    let created = create_token(&mut admin, &row, ttl, email).await?;
    let token = created.token.clone().unwrap_or_default();
    let expires = crate::output::time(token.expires_at);
    let delivery = created.email.clone();
    if ctx.json {
        let mut value = json!({"user": user, "device": device, "token_id": token.id, "expires_at": expires,
               "link": format!("{}:{}", porta_proto::invitation::LINK_SCHEME, created.invitation),
               "invitation": created.invitation, "ready_to_send": ready_to_send(&created, user)});
        if let Some(d) = &delivery {
            value["email"] = json!({"to": d.to, "sent": d.sent, "error": d.error});
        }
        println!("{value}");
        return not_emailed(device, delivery.as_ref());
    }
    if let Some(d) = delivery.as_ref().filter(|d| d.sent) {
        eprintln!(
            "Invitation for {device} ({user}) e-mailed to {}, valid once until {expires}.",
            d.to
        );
        return Ok(());
    }
    eprintln!("Invitation for {device} ({user}), valid once until {expires}:");
    print_invitation(&created.invitation, qr)?;
    eprintln!();
    eprintln!("Ready to send:");
    println!("{}", ready_to_send(&created, user));
    not_emailed(device, delivery.as_ref())
}

/// The error for an e-mail that was asked for and not delivered.
fn not_emailed(device: &str, delivery: Option<&pb::EmailDelivery>) -> Result<()> {
    match delivery {
        Some(d) if !d.sent => bail!(
            "the invitation was not e-mailed to {}: {} (it stays valid: hand it over as printed, \
             or `portactl tokens resend {device}` later)",
            d.to,
            d.error
        ),
        _ => Ok(()),
    }
}

/// The one line an admin pastes into a mail or chat to the staff member
/// (the `porta:` link opens the Porta app with the invitation filled in):
/// the controller's, in the person's language and name; an older
/// controller sends none, and gets this English one.
fn ready_to_send(created: &pb::CreateEnrollmentTokenResponse, user: &str) -> String {
    use porta_proto::invitation::LINK_SCHEME;
    if !created.ready_to_send.is_empty() {
        return created.ready_to_send.clone();
    }
    let invitation = &created.invitation;
    format!(
        "Hello {user}: to connect your computer, open this link with the Porta app: \
         {LINK_SCHEME}:{invitation}  (or paste it into the app, or run: porta enroll {invitation})"
    )
}

/// One staff row of the input CSV.
#[derive(Clone, Debug, Default, Deserialize)]
struct Row {
    user: String,
    device: String,
    #[serde(default)]
    groups: String,
    #[serde(default)]
    display_name: String,
    #[serde(default)]
    email: String,
    /// ca, es, it or en; empty for the town's default.
    #[serde(default)]
    language: String,
    /// The gateway the device connects through; empty for the controller's.
    #[serde(default)]
    gateway: String,
}

impl Row {
    fn groups(&self) -> Vec<String> {
        self.groups
            .split([';', ',', ' '])
            .map(str::trim)
            .filter(|g| !g.is_empty())
            .map(String::from)
            .collect()
    }
}

async fn bulk(
    ctx: &Ctx,
    csv_path: &Path,
    out_path: &Path,
    gateway: Option<&str>,
    ttl: u64,
    email: bool,
) -> Result<()> {
    let bytes =
        std::fs::read(csv_path).with_context(|| format!("opening {}", csv_path.display()))?;
    let (text, _) = crate::spreadsheet::decode(&bytes);
    let mut reader = csv::ReaderBuilder::new()
        .trim(csv::Trim::All)
        .delimiter(crate::spreadsheet::delimiter(&text))
        .from_reader(text.as_bytes());
    // Spreadsheets capitalise headers ("User"); columns are matched by name.
    let headers: csv::StringRecord = reader
        .headers()
        .with_context(|| format!("reading the header of {}", csv_path.display()))?
        .iter()
        .map(str::to_lowercase)
        .collect();
    for needed in ["user", "device"] {
        if !headers.iter().any(|h| h == needed) {
            bail!(Usage(format!(
                "{} has no {needed:?} column (its columns: {}; expected: user, device, groups, \
                 display_name, email, language, gateway)",
                csv_path.display(),
                headers.iter().collect::<Vec<_>>().join(", ")
            )));
        }
    }
    // Each row with the line it starts on in the file (a quoted cell may
    // span lines, so counting rows would misreport).
    let rows: Vec<(u64, Result<Row, csv::Error>)> = reader
        .records()
        .map(|record| match record {
            Ok(record) => {
                let line = record.position().map_or(0, csv::Position::line);
                (line, record.deserialize(Some(&headers)))
            }
            Err(e) => (e.position().map_or(0, csv::Position::line), Err(e)),
        })
        .collect();
    let done = already_done(out_path)?;
    let mut out = open_out(out_path)?;
    let mut admin = ctx.admin().await?;
    // Open tokens, for retrying the e-mails an earlier run could not send.
    let open_tokens: HashMap<(String, String), pb::EnrollmentToken> = if email {
        admin
            .list_enrollment_tokens(pb::ListEnrollmentTokensRequest {})
            .await?
            .into_inner()
            .tokens
            .into_iter()
            .map(|t| ((t.user.clone(), t.device_name.clone()), t))
            .collect()
    } else {
        HashMap::new()
    };
    let mut emailed = 0usize;
    let users: HashSet<String> = admin
        .list_users(pb::ListUsersRequest {})
        .await?
        .into_inner()
        .users
        .into_iter()
        .map(|u| u.name)
        .collect();
    let users = Arc::new(Mutex::new(users));
    // A user's rows go one after another, in file order: each row's task
    // waits until the one before it for the same user has ended (its
    // sender dropped).
    let mut last_of_user: HashMap<String, tokio::sync::oneshot::Receiver<()>> = HashMap::new();

    let progress = indicatif::ProgressBar::new(rows.len() as u64);
    progress.set_style(
        indicatif::ProgressStyle::with_template("{bar:40} {pos}/{len} {per_sec} {msg}")
            .unwrap_or_else(|_| indicatif::ProgressStyle::default_bar()),
    );
    let (mut enrolled, mut skipped, mut failures) = (0usize, 0usize, Vec::new());
    let (mut unreachable_in_a_row, mut stopped_at) = (0, None);
    // The line each (user, device) of this file first appeared on.
    let mut first_seen: HashMap<(String, String), u64> = HashMap::new();
    let mut rows = rows.into_iter();
    // Rows being enrolled, in file order.
    let mut window: VecDeque<(
        u64,
        Row,
        tokio::task::JoinHandle<Result<pb::CreateEnrollmentTokenResponse>>,
    )> = VecDeque::new();
    loop {
        while window.len() < IN_FLIGHT
            && let Some((line, row)) = rows.next()
        {
            let mut row = match row {
                Ok(row) => row,
                Err(e) => {
                    progress.inc(1);
                    failures.push(json!({"line": line, "error": format!("unreadable row: {e}")}));
                    continue;
                }
            };
            let key = (row.user.clone(), row.device.clone());
            if let Some(invitation) = done.get(&key) {
                progress.inc(1);
                skipped += 1;
                // Done before; e-mail it now if that failed then (the same
                // invitation, so the --out file stays right).
                let unsent = open_tokens.get(&key).filter(|t| email && t.emailed_at == 0);
                if let Some(token) = unsent {
                    let request = pb::ResendEnrollmentTokenRequest {
                        id: token.id.clone(),
                        invitation: invitation.clone(),
                    };
                    match admin.resend_enrollment_token(request).await {
                        Ok(sent) => match sent.into_inner().email {
                            Some(d) if d.sent => emailed += 1,
                            d => failures.push(email_failure(line, &row, d.as_ref())),
                        },
                        Err(e) => failures.push(json!({"line": line, "user": row.user, "device": row.device, "error": e.message()})),
                    }
                }
                continue;
            }
            if let Some(first) = first_seen.get(&key) {
                // The same row twice in the file: one invitation per device.
                progress.inc(1);
                failures.push(json!({"line": line, "user": row.user, "device": row.device,
                    "error": format!("the same user and device as line {first} of this file")}));
                continue;
            }
            first_seen.insert(key, line);
            if row.gateway.is_empty() {
                row.gateway = gateway.unwrap_or_default().to_owned();
            }
            let (ended, next) = tokio::sync::oneshot::channel::<()>();
            let before = last_of_user.insert(row.user.clone(), next);
            let (mut admin, users, task_row) = (admin.clone(), users.clone(), row.clone());
            let task = tokio::spawn(async move {
                if let Some(before) = before {
                    let _ = before.await;
                }
                let outcome = enroll_row(&mut admin, &task_row, &users, ttl, email).await;
                drop(ended);
                outcome
            });
            window.push_back((line, row, task));
        }
        let Some((line, row, task)) = window.pop_front() else {
            break;
        };
        let outcome = task.await.context("enrolling a row")?;
        progress.inc(1);
        progress.set_message(format!("{} / {}", row.user, row.device));
        if outcome.as_ref().is_err_and(is_unreachable) {
            unreachable_in_a_row += 1;
        } else {
            unreachable_in_a_row = 0;
        }
        match outcome {
            Ok(created) => {
                let token = created.token.clone().unwrap_or_default();
                // The file is opened in spreadsheets for mail merges: no
                // cell (a display name like `=HYPERLINK(…)`) may run.
                out.write_record(
                    [
                        row.user.as_str(),
                        row.device.as_str(),
                        created.invitation.as_str(),
                        crate::output::time(token.expires_at).as_str(),
                        ready_to_send(&created, &row.user).as_str(),
                        row.display_name.as_str(),
                        row.email.as_str(),
                    ]
                    .map(|cell| porta_proto::audit::neutralise(cell).into_owned()),
                )?;
                out.flush()?;
                enrolled += 1;
                match created.email {
                    Some(d) if d.sent => emailed += 1,
                    Some(d) => failures.push(email_failure(line, &row, Some(&d))),
                    None => {}
                }
            }
            Err(e) => failures.push(json!({"line": line, "user": row.user, "device": row.device, "error": porta_proto::describe_chain(e.chain())})),
        }
        if unreachable_in_a_row >= GIVE_UP_AFTER {
            // The controller is gone: every further row would fail the
            // same way. What was done is in --out; a re-run resumes (an
            // invitation made for a row in flight but not written there
            // is replaced then).
            stopped_at = Some(line);
            for (_, _, task) in window.drain(..) {
                task.abort();
            }
            break;
        }
    }
    progress.finish_and_clear();
    // Rows refused before they were sent were noted as they were read.
    failures.sort_by_key(|failure| failure["line"].as_u64());

    let total = enrolled + skipped + failures.len();
    if ctx.json {
        println!(
            "{}",
            json!({"enrolled": enrolled, "skipped": skipped, "emailed": emailed, "failed": failures, "out": out_path})
        );
    } else {
        for failure in &failures {
            eprintln!(
                "line {}: {} {}: {}",
                failure["line"],
                failure["user"].as_str().unwrap_or(""),
                failure["device"].as_str().unwrap_or(""),
                failure["error"].as_str().unwrap_or("")
            );
        }
    }
    if let Some(line) = stopped_at {
        bail!(
            "stopped at line {line}: the controller did not answer {GIVE_UP_AFTER} times in a row. \
             {enrolled} invitations were written to {}; run the same command again to resume \
             (rows already there are skipped)",
            out_path.display()
        );
    }
    if !ctx.json {
        let mailed = if email {
            format!(", {emailed} e-mailed")
        } else {
            String::new()
        };
        println!(
            "{enrolled} enrolled, {skipped} already done (skipped){mailed}, {} failed; invitations in {}",
            failures.len(),
            out_path.display()
        );
    }
    if failures.is_empty() {
        Ok(())
    } else {
        Err(RowsFailed {
            failed: failures.len(),
            total,
        }
        .into())
    }
}

/// A row whose invitation exists (in --out) but was not e-mailed.
fn email_failure(line: u64, row: &Row, delivery: Option<&pb::EmailDelivery>) -> serde_json::Value {
    let (to, why) = delivery.map_or(("", "no delivery reported"), |d| {
        (d.to.as_str(), d.error.as_str())
    });
    json!({"line": line, "user": row.user, "device": row.device,
           "error": format!("not e-mailed to {to}: {why}; the invitation is in --out and stays valid, and a re-run retries the e-mail")})
}

/// How many rows in a row may find the controller unreachable before a
/// CSV run stops.
const GIVE_UP_AFTER: usize = 3;

/// True if `error` says the controller could not be reached, or the
/// connection broke mid-call (an `Unknown` status carrying a transport
/// error: statuses the controller sends never carry a source).
fn is_unreachable(error: &anyhow::Error) -> bool {
    error.chain().any(|cause| {
        cause.downcast_ref::<tonic::Status>().is_some_and(|s| {
            s.code() == Code::Unavailable
                || (s.code() == Code::Unknown && std::error::Error::source(s).is_some())
        })
    })
}

async fn enroll_row(
    admin: &mut AdminClient<Authed>,
    row: &Row,
    users: &Mutex<HashSet<String>>,
    ttl: u64,
    email: bool,
) -> Result<pb::CreateEnrollmentTokenResponse> {
    ensure_user(admin, row, Some(users)).await?;
    match create_token(admin, row, ttl, email).await {
        Err(error) if is_already_exists(&error) => {
            // An earlier run created this row's invitation but died before
            // writing it to --out (it is not there, or the row would have
            // been skipped): nobody has it, so it is replaced.
            let Some(open) = open_token(admin, row).await? else {
                return Err(error);
            };
            admin
                .delete_enrollment_token(pb::DeleteEnrollmentTokenRequest { id: open.id })
                .await?;
            create_token(admin, row, ttl, email).await
        }
        outcome => outcome,
    }
}

fn is_already_exists(error: &anyhow::Error) -> bool {
    error.chain().any(|cause| {
        cause
            .downcast_ref::<tonic::Status>()
            .is_some_and(|s| s.code() == Code::AlreadyExists)
    })
}

/// The open enrollment token for this row's user and device, if any.
async fn open_token(
    admin: &mut AdminClient<Authed>,
    row: &Row,
) -> Result<Option<pb::EnrollmentToken>> {
    let tokens = admin
        .list_enrollment_tokens(pb::ListEnrollmentTokensRequest {})
        .await?
        .into_inner()
        .tokens;
    Ok(tokens
        .into_iter()
        .find(|t| t.user == row.user && t.device_name == row.device))
}

/// Creates the user if missing (with the row's groups), else adds the
/// row's groups the user is not in yet. `known` lists the users that
/// exist, if the caller knows them.
async fn ensure_user(
    admin: &mut AdminClient<Authed>,
    row: &Row,
    known: Option<&Mutex<HashSet<String>>>,
) -> Result<()> {
    let groups = row.groups();
    let exists = match known {
        Some(known) => known
            .lock()
            .map_err(|_| anyhow::anyhow!("a row's enrollment panicked"))?
            .contains(&row.user),
        None => match admin
            .get_user(pb::GetUserRequest {
                name: row.user.clone(),
            })
            .await
        {
            Ok(_) => true,
            Err(status) if status.code() == Code::NotFound => false,
            Err(status) => return Err(status.into()),
        },
    };
    if !exists {
        admin
            .create_user(pb::CreateUserRequest {
                name: row.user.clone(),
                display_name: row.display_name.clone(),
                email: row.email.clone(),
                groups,
                language: row.language.clone(),
            })
            .await?;
        if let Some(known) = known {
            known
                .lock()
                .map_err(|_| anyhow::anyhow!("a row's enrollment panicked"))?
                .insert(row.user.clone());
        }
        return Ok(());
    }
    let current: BTreeSet<String> = admin
        .get_user(pb::GetUserRequest {
            name: row.user.clone(),
        })
        .await?
        .into_inner()
        .groups
        .into_iter()
        .collect();
    for group in groups.into_iter().filter(|g| !current.contains(g)) {
        admin
            .add_group_members(pb::GroupMembersRequest {
                group,
                users: vec![row.user.clone()],
            })
            .await?;
    }
    Ok(())
}

async fn create_token(
    admin: &mut AdminClient<Authed>,
    row: &Row,
    ttl: u64,
    email: bool,
) -> Result<pb::CreateEnrollmentTokenResponse> {
    let request = pb::CreateEnrollmentTokenRequest {
        user: row.user.clone(),
        device_name: row.device.clone(),
        ttl_seconds: ttl,
        gateway: row.gateway.clone(),
        email,
    };
    Ok(admin.create_enrollment_token(request).await?.into_inner())
}

/// (user, device) pairs already in the output file, with their
/// invitations.
fn already_done(out: &Path) -> Result<HashMap<(String, String), String>> {
    if !out.exists() {
        return Ok(HashMap::new());
    }
    // Files from before display_name and email were copied have fewer
    // columns: only the first two matter here.
    let mut reader = csv::ReaderBuilder::new()
        .flexible(true)
        .from_path(out)
        .with_context(|| format!("reading {}", out.display()))?;
    let mut done = HashMap::new();
    for record in reader.records() {
        let record = record.with_context(|| format!("{} is damaged", out.display()))?;
        if let (Some(user), Some(device)) = (record.get(0), record.get(1)) {
            let plain = |cell: &str| porta_proto::audit::unneutralise(cell).into_owned();
            let invitation = plain(record.get(2).unwrap_or_default());
            done.insert((plain(user), plain(device)), invitation);
        }
    }
    Ok(done)
}

/// Opens the output for appending (0600: it holds invitations), writing
/// the header if the file is new.
fn open_out(path: &Path) -> Result<csv::Writer<std::fs::File>> {
    use std::os::unix::fs::OpenOptionsExt;
    let fresh = std::fs::metadata(path)
        .map(|m| m.len() == 0)
        .unwrap_or(true);
    let file = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .mode(0o600)
        .open(path)
        .with_context(|| format!("opening {}", path.display()))?;
    let mut writer = csv::WriterBuilder::new()
        .has_headers(false)
        .from_writer(file);
    if fresh {
        writer.write_record([
            "user",
            "device",
            "invitation",
            "expires",
            "message",
            "display_name",
            "email",
        ])?;
        writer.flush()?;
    }
    Ok(writer)
}
