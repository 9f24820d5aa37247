//! `steward posture`: the inventory and its findings, mapped to the OWASP NHI Top 10.

use std::process::ExitCode;

use anyhow::Result;
use clap::{Args, ValueEnum};
use steward_api::{PostureQuery, PostureReport, Severity};

use crate::commands::connect;
use crate::{Remote, output};

#[derive(Debug, Clone, Copy, ValueEnum)]
pub enum Format {
    Text,
    Json,
}

#[derive(Debug, Clone, Copy, ValueEnum)]
pub enum FailOn {
    Critical,
    High,
    Medium,
    Low,
}

impl FailOn {
    fn severity(self) -> Severity {
        match self {
            Self::Critical => Severity::Critical,
            Self::High => Severity::High,
            Self::Medium => Severity::Medium,
            Self::Low => Severity::Low,
        }
    }
}

#[derive(Debug, Args)]
pub struct PostureArgs {
    /// Days of evidence that count as use (permissions used, last use).
    #[arg(long, default_value_t = 30)]
    window_days: u64,
    /// Active identities unused for this many days are stale.
    #[arg(long, default_value_t = 30)]
    stale_days: u64,
    /// Days after an identity's registration before its unused permissions are judged
    /// (0: at once); the server's `[posture] observation_days` (default 14) when unset.
    #[arg(long)]
    observation_days: Option<u64>,
    /// Only this plane and the planes below it.
    #[arg(long)]
    plane: Option<String>,
    /// Compute effective permissions for at most this many identities, the most
    /// sensitive (by classification) first; each costs one decision per capability and
    /// action.
    #[arg(long, default_value_t = 100)]
    max_analysed: usize,
    /// `text` for people, `json` for machines (the whole report).
    #[arg(long, value_enum, default_value = "text")]
    format: Format,
    /// Also print the inventory (text format).
    #[arg(long)]
    inventory: bool,
    /// Exit 1 when a finding is at least this severe (a gate for pipelines).
    #[arg(long, value_enum)]
    fail_on: Option<FailOn>,
    #[command(flatten)]
    remote: Remote,
}

pub(crate) async fn run(a: PostureArgs) -> Result<ExitCode> {
    let report: PostureReport = connect(&a.remote)?
        .posture(&PostureQuery {
            window_days: Some(a.window_days),
            stale_days: Some(a.stale_days),
            observation_days: a.observation_days,
            max_analysed: Some(a.max_analysed),
            plane: a.plane.clone(),
            identity: None,
        })
        .await?;
    match a.format {
        Format::Json => println!("{}", serde_json::to_string_pretty(&report)?),
        Format::Text => print!("{}", text(&report, a.inventory)),
    }
    let failed = a.fail_on.is_some_and(|f| {
        report
            .findings
            .iter()
            .any(|finding| finding.severity <= f.severity())
    });
    Ok(if failed {
        ExitCode::FAILURE
    } else {
        ExitCode::SUCCESS
    })
}

fn counts<K: std::fmt::Display>(m: &std::collections::BTreeMap<K, usize>) -> String {
    if m.is_empty() {
        return "none".into();
    }
    m.iter()
        .map(|(k, v)| format!("{k} {v}"))
        .collect::<Vec<_>>()
        .join(", ")
}

/// The human-readable report: summary, findings, and optionally the inventory.
pub(crate) fn text(r: &PostureReport, inventory: bool) -> String {
    let s = &r.summary;
    let mut out = format!(
        "Posture of {} identities ({}), evidence of the last {} days, stale after {} days, unused permissions judged {}:\n",
        s.identities,
        counts(&s.by_state),
        r.window_days,
        r.stale_days,
        match r.observation_days {
            0 => "at once".to_owned(),
            d => format!("{d} days after registration"),
        }
    );
    out.push_str(&format!(
        "Findings: {} ({})\nOWASP NHI Top 10: {}\n",
        s.findings,
        counts(&s.by_severity),
        counts(&s.by_owasp)
    ));
    if !r.findings.is_empty() {
        let rows: Vec<Vec<String>> = r
            .findings
            .iter()
            .map(|f| {
                vec![
                    format!("{:?}", f.severity).to_uppercase(),
                    f.id.split(':').next().unwrap_or_default().to_owned(),
                    f.subject.clone(),
                    f.owner.clone(),
                    f.owasp
                        .iter()
                        .map(|o| o.split(' ').next().unwrap_or_default())
                        .collect::<Vec<_>>()
                        .join(" "),
                    f.summary.clone(),
                ]
            })
            .collect();
        out.push_str(&output::table(
            &[
                "SEVERITY",
                "FINDING",
                "SUBJECT",
                "OWNER",
                "OWASP",
                "WHAT TO DO",
            ],
            &rows,
        ));
    }
    if s.observing > 0 {
        out.push_str(&format!(
            "{} {} registered less than {} days ago: usage is still being observed, so unused permissions are not judged yet (`--inventory` says until when).\n",
            s.observing,
            if s.observing == 1 {
                "identity was"
            } else {
                "identities were"
            },
            r.observation_days
        ));
    }
    if s.not_analysed > 0 {
        out.push_str(&format!(
            "Effective permissions were computed for {} identities; {} were not analysed (raise --max-analysed, or `steward identity entitlements ID`).\n",
            s.analysed, s.not_analysed
        ));
    }
    if inventory {
        let rows: Vec<Vec<String>> = r
            .inventory
            .iter()
            .map(|i| {
                vec![
                    i.spiffe_id.clone(),
                    i.plane.clone(),
                    format!(
                        "{}{}",
                        i.owner,
                        if i.owner_removed { " (removed)" } else { "" }
                    ),
                    i.environment.clone(),
                    i.state.to_string(),
                    format!(
                        "{} key(s){}{}",
                        i.credentials.registered_keys,
                        i.credentials
                            .client_secret_age_days
                            .map(|d| format!(", secret {d} d"))
                            .unwrap_or_default(),
                        if i.credentials.active_tokens > 0 {
                            format!(", {} active token(s)", i.credentials.active_tokens)
                        } else {
                            String::new()
                        }
                    ),
                    i.last_used.clone().unwrap_or_else(|| "never".into()),
                    format!(
                        "{} / {} / {}{}",
                        i.permissions.intended.len(),
                        i.permissions
                            .effective
                            .as_ref()
                            .map_or("?".into(), |e| e.len().to_string()),
                        i.permissions.used.len(),
                        i.permissions
                            .observed_until
                            .as_ref()
                            .map(|t| format!(" (observed until {})", t.get(..10).unwrap_or(t)))
                            .unwrap_or_default()
                    ),
                ]
            })
            .collect();
        out.push_str(&output::table(
            &[
                "IDENTITY",
                "PLANE",
                "OWNER",
                "ENV",
                "STATE",
                "CREDENTIALS",
                "LAST USED",
                "INTENDED / EFFECTIVE / USED",
            ],
            &rows,
        ));
        let agents: Vec<Vec<String>> = r
            .inventory
            .iter()
            .filter_map(|i| Some((i, i.agent_tools.as_ref()?)))
            .map(|(i, t)| {
                vec![
                    i.spiffe_id.clone(),
                    format!(
                        "{} / {} / {}",
                        t.intended.len(),
                        t.allowed
                            .as_ref()
                            .map_or("?".into(), |a| a.len().to_string()),
                        t.used.len()
                    ),
                    if t.unused.is_empty() {
                        "-".into()
                    } else {
                        t.unused.join(", ")
                    },
                ]
            })
            .collect();
        if !agents.is_empty() {
            out.push_str("\nAgent tools:\n");
            out.push_str(&output::table(
                &[
                    "AGENT",
                    "INTENDED / ALLOWED / USED",
                    "ALLOWED, NEVER CALLED",
                ],
                &agents,
            ));
        }
    }
    out
}

#[derive(Debug, Clone, Copy, ValueEnum)]
pub enum ReportFormat {
    Text,
    Json,
    Html,
}

/// `steward compliance`.
#[derive(Debug, Args)]
pub struct ComplianceArgs {
    /// `text` (a summary per framework), `json`, or `html` (self-contained; print it to
    /// PDF from a browser).
    #[arg(long, value_enum, default_value = "text")]
    format: ReportFormat,
    /// Write to this file instead of standard output.
    #[arg(long, short)]
    output: Option<std::path::PathBuf>,
    #[command(flatten)]
    remote: Remote,
}

pub(crate) async fn compliance(a: ComplianceArgs) -> Result<ExitCode> {
    use steward_api::Status;
    use steward_posture::compliance::render_html;
    let report = connect(&a.remote)?.compliance().await?;
    let text = match a.format {
        ReportFormat::Json => serde_json::to_string_pretty(&report)? + "\n",
        ReportFormat::Html => render_html(&report),
        ReportFormat::Text => {
            let mut out = format!(
                "Compliance evidence, {} — controls: {}\n",
                report.generated_at,
                counts(&report.summary)
            );
            for f in &report.frameworks {
                out.push_str(&format!("\n{}\n", f.name));
                let rows: Vec<Vec<String>> = f
                    .controls
                    .iter()
                    .map(|c| {
                        vec![
                            c.id.clone(),
                            match c.status {
                                Status::Evidenced => "evidenced",
                                Status::Partial => "PARTIAL",
                                Status::Gap => "GAP",
                            }
                            .to_owned(),
                            c.evidence
                                .iter()
                                .map(|e| format!("{} {}", e.value, e.label))
                                .collect::<Vec<_>>()
                                .join("; "),
                            c.gaps.join("; "),
                        ]
                    })
                    .collect();
                out.push_str(&output::table(
                    &["CONTROL", "STATUS", "EVIDENCE", "GAPS"],
                    &rows,
                ));
            }
            out
        }
    };
    match &a.output {
        Some(path) => {
            std::fs::write(path, &text)
                .map_err(|e| anyhow::anyhow!("cannot write {}: {e}", path.display()))?;
            eprintln!("Wrote {}", path.display());
        }
        None => print!("{text}"),
    }
    Ok(ExitCode::SUCCESS)
}
