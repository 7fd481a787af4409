//! The pages every office reads: the dashboard, filings with the police (备案) and their 24-hour
//! clock, verification of an uploaded document or signature, and the auditor's journal.

use super::form::{encode, Form, Query};
use super::view::{self, csrf, page, pager, when};
use super::{with, Answer, Ctx, Refusal, Reply};
use crate::authz::Role;
use crate::seal::{FilingState, Judged, SealState};
use hyper::StatusCode;
use maud::{html, Markup};

fn ok(m: Markup) -> Reply {
    Ok(Answer::Page(StatusCode::OK, m))
}

/// The dashboard: what needs doing now, by role.
pub(crate) async fn dashboard(ctx: &Ctx) -> Reply {
    let role = ctx.p.role;
    let health = ctx.app.pool.health();
    let head = ctx.app.journal.head_seq();
    let registry_wide = matches!(role, Role::Issuer | Role::Auditor);
    let (facts, today, own, keys, requests) = with(ctx, move |r, p| {
        let facts = if registry_wide { Some(r.filings().facts()?) } else { None };
        let today = if registry_wide { Some(r.uses().todays_uses(p)?) } else { None };
        // A unit administrator's own seals, counted from a light reading of each.
        let own = if role == Role::UnitAdmin { Some(r.lifecycle().state_counts(p, 100_000)?.0) } else { None };
        let keys = if matches!(role, Role::Secofficer | Role::Sysadmin) {
            Some(r.dual_control().expiring_appliance_keys()?)
        } else {
            None
        };
        let requests = if role.is_administrator() {
            let (reqs, _) = r.dual_control().requests_page(p, None, crate::audit::MAX_PAGE)?;
            Some(reqs.into_iter().filter(|q| q.state == crate::seal::RequestState::Pending).count())
        } else {
            None
        };
        Ok((facts, today, own, keys, requests))
    })
    .await?;
    let l = ctx.lang;
    let by_state = facts.as_ref().map(|f| f.seals_by_state).or(own);
    let body = html! {
        @if let Some(counts) = by_state {
            h2 { (ctx.t("印章状态", "Seals by state")) }
            div.cards id="by-state" {
                @for (s, n) in SealState::ALL.iter().zip(counts) {
                    a.card href={"/console/seals?state=" (s.name())} { div { (view::state(l, *s)) } div.n { (n) } }
                }
            }
        }
        @if let Some(f) = &facts {
            h2 { (ctx.t("需要处理", "Needs attention")) }
            div.cards {
                a.card.alert[f.overdue_count > 0] href="/console/filings?state=pending" {
                    div { (ctx.t("超过 24 小时未备案", "Filings overdue past 24 h")) } div.n id="overdue" { (f.overdue_count) }
                }
                a.card.alert[f.expiring_count > 0] href={"/console/seals?expiring=" (ctx.app.signing.registry().settings().reminder_days)} {
                    div { (ctx.t("证书即将到期（续期提醒期内）", "Certificates expiring (renewal window)")) } div.n id="expiring" { (f.expiring_count) }
                }
            }
            @if !f.overdue.is_empty() {
                ul.muted { @for o in f.overdue.iter().take(10) { li { (o) } } }
            }
        }
        @if let Some(t) = &today {
            h2 { (ctx.t("今日用印", "Today's signatures")) " · " span.muted { (ctx.t("自 ", "since ")) (when(ctx, t.since_ms)) } }
            @if !t.complete { p.muted { (ctx.t("今日用印的印章较多，以下统计前 ", "Many seals were used today: counted for the first ")) (crate::seal::TODAY_READ) (ctx.t(" 个。", ".")) } }
            div.row {
                table id="today-by-seal" { tr { th { (ctx.t("印章", "Seal")) } th.num { (ctx.t("次数", "Uses")) } }
                    @for (s, n) in t.by_seal.iter().take(20) { tr { td { a href={"/console/seals/" (encode(s))} { code { (s) } } } td.num { (n) } } }
                    @if t.by_seal.is_empty() { tr { td colspan="2" { span.muted { (ctx.t("今日尚无用印", "No use today")) } } } }
                }
                table id="today-by-app" { tr { th { (ctx.t("应用或经办人", "Application or person")) } th.num { (ctx.t("次数", "Uses")) } }
                    @for (a, n) in t.by_app.iter().take(20) { tr { td { (a) } td.num { (n) } } }
                }
            }
        }
        @if role == Role::Sysadmin {
            h2 { (ctx.t("备份", "Backup")) }
            p { a.btn href="/v1/admin/backup" { (ctx.t("下载完整备份", "Download a full backup")) } " "
                span.muted { (ctx.t("签名的审计日志全量备份；中断后可用 sealctl backup --resume 续传。", "The signed journal, whole; a download cut short resumes with sealctl backup --resume.")) } }
        }
        @if let Some(k) = &keys {
            h2 { (ctx.t("设备密钥", "Appliance keys")) }
            @if k.is_empty() { p { (ctx.t("没有即将到期的设备密钥。", "No appliance key is expiring.")) } }
            @else { ul { @for x in k { li { (x) } } } }
        }
        @if let Some(n) = requests {
            p { a href="/console/requests" { (ctx.t("待复核的双人控制请求：", "Dual-control requests waiting: ")) strong id="pending-requests" { (n) } } }
        }
        h2 { (ctx.t("设备状态", "Appliance")) }
        dl.fields {
            dt { (ctx.t("密码设备", "Token")) }
            dd id="token" { (view::health(ctx, &health)) }
            dt { (ctx.t("审计日志记录数", "Journal records")) } dd { (head) }
        }
    };
    ok(page(ctx, ctx.t("概览", "Dashboard"), body))
}

/// Filings with the police system, with their 24-hour clock; issuers acknowledge them.
pub(crate) async fn filings(ctx: &Ctx, q: &Query) -> Reply {
    let state = match q.get("state") {
        None => None,
        Some("pending") => Some(FilingState::Pending),
        Some("acked") => Some(FilingState::Acked),
        Some(other) => return Err(Refusal::bad(format!("state '{other}' is not pending or acked"))),
    };
    let cursor = q.get("cursor").map(str::to_string);
    let (list, next) = with(ctx, move |r, p| r.filings().filings_page(p, state, cursor.as_deref(), 100)).await?;
    let now = crate::seal::now_ms();
    let deadline = ctx.app.signing.registry().settings().filing_deadline_hours * 3_600_000;
    let base = match state {
        Some(FilingState::Pending) => "/console/filings?state=pending",
        Some(FilingState::Acked) => "/console/filings?state=acked",
        None => "/console/filings",
    };
    let body = html! {
        p {
            a href="/console/filings" { (ctx.t("全部", "All")) } " · "
            a href="/console/filings?state=pending" { (ctx.t("待备案", "Pending")) } " · "
            a href="/console/filings?state=acked" { (ctx.t("已备案", "Acknowledged")) } " · "
            a href="/v1/filings/export" { (ctx.t("导出备案数据 (JSON)", "Export the filings (JSON)")) }
        }
        table id="filings" {
            tr { th { (ctx.t("备案号", "Filing")) } th { (ctx.t("印章", "Seal")) } th { (ctx.t("单位", "Unit")) } th { (ctx.t("事项", "For")) }
                 th { (ctx.t("证书序列号", "Certificate")) } th { (ctx.t("产生时间", "Created")) } th { (ctx.t("24 小时时限", "24 h clock")) } th { (ctx.t("状态", "State")) } th {} }
            @for f in &list {
                @let f = &f.filing;
                tr data-filing=(f.id) {
                    td { code { (f.id) } }
                    td { a href={"/console/seals/" (encode(&f.seal))} { (f.seal_name) } }
                    td { (f.unit) }
                    td { (view::action(ctx.lang, &f.action)) @if let Some(v) = f.key_version { " v" (v) } }
                    td { code { (f.cert_serial.as_deref().unwrap_or("")) } }
                    td { (when(ctx, f.created_ms)) }
                    td {
                        @if f.state == FilingState::Acked { span.muted { "—" } }
                        @else if f.overdue(now, deadline) {
                            span.badge.bad { (ctx.t("已逾期 ", "overdue by ")) ((now - f.created_ms - deadline) / 3_600_000) (ctx.t(" 小时", " h")) }
                        } @else {
                            span.badge.warn { (ctx.t("剩余 ", "")) ((f.created_ms + deadline).saturating_sub(now) / 3_600_000) (ctx.t(" 小时", " h left")) }
                        }
                    }
                    td { @if f.state == FilingState::Acked {
                            span.badge.ok { (ctx.t("已备案", "acknowledged")) } @if let Some(r) = &f.reference { " " code { (r) } }
                            @if let Some(t) = f.acked_ms { br; span.muted { (when(ctx, t)) } }
                        } @else { span.badge.warn { (ctx.t("待备案", "pending")) } } }
                    td { a href={"/console/filings/" (encode(&f.id)) "/package"} { (ctx.t("备案材料", "Package")) } br;
                        @if f.state == FilingState::Pending && ctx.p.role == Role::Issuer {
                        form.inline method="post" action={"/console/filings/" (encode(&f.id)) "/ack"} {
                            (csrf(ctx))
                            input type="text" name="reference" placeholder=(ctx.t("公安备案回执号", "Police reference")) size="14";
                            " " button.primary type="submit" { (ctx.t("确认已备案", "Acknowledge")) }
                        }
                    } }
                }
            }
        }
        @if list.is_empty() { p.muted { (ctx.t("没有备案记录。", "No filing.")) } }
        (pager(ctx, base, next.as_deref()))
    };
    ok(page(ctx, ctx.t("备案", "Filings"), body))
}

/// A filing's package (JSON) to hand to the police system.
pub(crate) async fn package(ctx: &Ctx, id: &str) -> Reply {
    let id2 = id.to_string();
    let pkg = with(ctx, move |r, p| r.filings().package(p, &id2)).await?;
    let json = serde_json::to_vec_pretty(&pkg)
        .map_err(|e| Refusal::new(StatusCode::INTERNAL_SERVER_ERROR, "internal", e.to_string()))?;
    let body = crate::api::Body::Left(http_body_util::Full::new(json.into()));
    Ok(Answer::File("application/json", Some(format!("filing-{}.json", encode(id))), body))
}

pub(crate) async fn ack(ctx: &Ctx, id: &str, f: Form) -> Reply {
    let (id, reference) = (id.to_string(), f.opt("reference"));
    let _ = with(ctx, move |r, p| r.filings().ack_filing(p, &id, reference)).await?;
    Ok(Answer::Redirect("/console/filings?state=pending".into()))
}

/// The verification form.
pub(crate) fn verify_form(ctx: &Ctx) -> Reply {
    ok(page(ctx, ctx.t("验证", "Verify"), verify_box(ctx)))
}

fn verify_box(ctx: &Ctx) -> Markup {
    html! {
        form.box method="post" action="/console/verify" enctype="multipart/form-data" {
            (csrf(ctx))
            label { span { (ctx.t("类型", "What")) } select name="kind" {
                option value="ofd" { (ctx.t("已签章的 OFD 文档", "A sealed OFD document")) }
                option value="ses" { (ctx.t("电子签章数据 (SES_Signature, DER)", "An electronic signature (SES_Signature, DER)")) }
                option value="cms" { (ctx.t("数字签名 (GM/T 0010 SignedData, DER)", "A signature (GM/T 0010 SignedData, DER)")) }
                option value="seal" { (ctx.t("电子印章 (SESeal, DER)", "An electronic seal (SESeal, DER)")) }
            } }
            label { span { (ctx.t("文件", "File")) } input type="file" name="file" required; }
            label { span { (ctx.t("原文（可选）", "Signed data (optional)")) } input type="file" name="data"; }
            button.primary type="submit" { (ctx.t("验证", "Verify")) }
        }
    }
}

/// An uploaded file verified, step by step, with the registry's state at signing time.
pub(crate) async fn verify(ctx: &Ctx, f: Form) -> Reply {
    let file =
        f.file("file").ok_or_else(|| Refusal::bad(ctx.t("请选择要验证的文件", "choose a file to verify")))?.clone();
    let data = f.file("data").map(|d| d.bytes.clone());
    let kind = f.text("kind").to_string();
    let _slot = ctx.document_slot().await?;
    let app = ctx.app.clone();
    let report = crate::api::blocking(move || -> Result<Report, Refusal> {
        let v = app.signing.registry().verification();
        let trust = app.signing.trust();
        Ok(match kind.as_str() {
            "ofd" => Report::Ofd(
                v.verify_ofd(&file.bytes, trust, &crate::formats::ofd::Limits::DEFAULT)
                    .map_err(|e| Refusal::bad(e.to_string()))?,
            ),
            "ses" => Report::One(v.verify_ses(&file.bytes, data.map(|d| crate::crypto::sm3(&d)), trust)),
            "cms" => Report::One(v.verify_cms(&file.bytes, data.as_deref(), trust)),
            "seal" => Report::One(v.verify_ses_seal(&file.bytes, None, trust)),
            other => return Err(Refusal::bad(format!("unknown kind '{other}'"))),
        })
    })
    .await??;
    let body = html! {
        p { (ctx.t("文件：", "File: ")) code { (f.file("file").map(|x| x.name.as_str()).unwrap_or("")) } }
        @match &report {
            Report::Ofd(v) => {
                p { (ctx.t("结论：", "Verdict: ")) (verdict(ctx, v.verdict)) " · " (v.signatures.len()) (ctx.t(" 个签章", " signatures")) }
                @for w in &v.unlisted_signatures { p.refusal { (ctx.t("未列入签名列表的签章：", "A signature not in the list: ")) (w) } }
                @for w in &v.added_after_final { p.refusal { (ctx.t("终结签章之后追加的签章：", "Added after the final signature: ")) (w) } }
                @for s in &v.signatures {
                    h2 { (ctx.t("签章 ", "Signature ")) code { (s.id) } " " (verdict(ctx, s.judged.verdict)) }
                    p.muted { (s.kind) " · " (s.base_loc) @if s.is_final { " · " (ctx.t("终结签章", "final")) } }
                    (steps(ctx, &s.judged))
                    @if !s.references.is_empty() {
                        details { summary { (ctx.t("受保护的文件", "Protected files")) " (" (s.references.len()) ")" }
                            table { @for r in &s.references { tr { td { code { (r.file) } } td { @if r.ok { span.badge.ok { "✓" } } @else { span.badge.bad { "✗" } } } } } }
                        }
                    }
                }
            }
            Report::One(j) => {
                p { (ctx.t("结论：", "Verdict: ")) (verdict(ctx, j.verdict)) }
                (steps(ctx, j))
            }
        }
        h2 { (ctx.t("再验证一个", "Verify another")) }
        (verify_box(ctx))
    };
    ok(page(ctx, ctx.t("验证报告", "Verification report"), body))
}

enum Report {
    Ofd(crate::seal::OfdVerdict),
    One(Judged),
}

fn verdict(ctx: &Ctx, v: &str) -> Markup {
    let text = match v {
        "valid" => ctx.t("有效", "valid"),
        "invalid" => ctx.t("无效", "invalid"),
        "signature_only" => ctx.t("签名有效（未核对原文）", "signature valid (data not checked)"),
        _ => ctx.t("无法完成验证", "incomplete"),
    };
    html! { span class={"badge verdict " (v)} { (text) } }
}

/// The steps of a verification, in the standard's order.
fn steps(ctx: &Ctx, j: &Judged) -> Markup {
    html! {
        table.steps {
            tr { th { (ctx.t("步骤", "Step")) } th { (ctx.t("结果", "Result")) } th { (ctx.t("说明", "Detail")) } }
            @for s in &j.steps {
                tr { td { (step_name(ctx, s.step)) br; code.muted { (s.step) } } td { @match s.ok {
                    Some(true) => span.badge.ok { (ctx.t("通过", "passed")) },
                    Some(false) => span.badge.bad { (ctx.t("未通过", "failed")) },
                    None => span.badge.warn { (ctx.t("未执行", "not run")) },
                } } td { (s.detail) } }
            }
        }
        @for w in &j.warnings { p.muted { "⚠ " (w) } }
    }
}

/// A verification step's name in the reader's language.
fn step_name<'a>(ctx: &Ctx, step: &'a str) -> &'a str {
    let (zh, en) = match step {
        "format" => ("数据格式", "Format"),
        "references" => ("文件完整性", "Files protected"),
        "data_hash" => ("原文摘要", "Data hash"),
        "signer_signature" => ("签章人签名", "Signer's signature"),
        "signer_in_cert_list" => ("签章人属于印章", "Signer belongs to the seal"),
        "maker_signature" => ("制章者签名", "Maker's signature"),
        "maker_certificate" => ("制章者证书", "Maker's certificate"),
        "signer_certificate" => ("签章人证书", "Signer's certificate"),
        "trust_chain" => ("证书链", "Certificate chain"),
        "revocation" => ("吊销状态", "Revocation"),
        "timestamp" => ("时间戳", "Time-stamp"),
        "seal_validity" => ("印章有效期", "Seal validity"),
        "registry_state" => ("登记状态（签章时）", "Registry state (when signed)"),
        _ => return step,
    };
    ctx.t(zh, en)
}

/// The journal, searched by time, actor, action and seal, newest first, a page at a time.
pub(crate) async fn audit(ctx: &Ctx, q: &Query) -> Reply {
    let offset = ctx.app.signing.registry().settings().utc_offset_hours;
    let mut query = crate::audit::Query::default();
    let mut link = String::from("/console/audit?");
    for k in ["from", "to", "actor", "action", "seal"] {
        if let Some(v) = q.get(k) {
            link.push_str(&format!("{k}={}&", encode(v)));
            match k {
                "from" => query.from_ms = Some(local_time(v, offset)?),
                "to" => query.to_ms = Some(local_time(v, offset)?),
                "actor" => query.actor = Some(v.to_string()),
                "action" => query.action = Some(v.to_string()),
                _ => query.object = Some(format!("seal:{v}")),
            }
        }
    }
    let link = link.trim_end_matches(['&', '?']).to_string();
    let cursor = q.get("cursor").map(str::to_string);
    let page_of = with(ctx, move |r, p| r.trail().audit_records(p, &query, &cursor, true, 100)).await?;
    let val = |k: &str| q.get(k).unwrap_or("").to_string();
    let body = html! {
        form.filters method="get" action="/console/audit" {
            label { span { (ctx.t("起", "From")) } input type="datetime-local" name="from" value=(val("from")); }
            label { span { (ctx.t("止", "To")) } input type="datetime-local" name="to" value=(val("to")); }
            label { span { (ctx.t("操作人", "Actor")) } input type="text" name="actor" value=(val("actor")) size="12"; }
            label { span { (ctx.t("操作", "Action")) } input type="text" name="action" value=(val("action")) size="12" placeholder="seal.use"; }
            label { span { (ctx.t("印章编码", "Seal")) } input type="text" name="seal" value=(val("seal")) size="14"; }
            button type="submit" { (ctx.t("查询", "Search")) }
        }
        p { a.btn href="/console/audit/verify" { (ctx.t("验证审计链", "Verify the chain")) } " "
            a.btn href="/v1/audit/export" { (ctx.t("导出全部记录 (JSON Lines)", "Export every record (JSON Lines)")) } }
        form.filters method="get" action="/v1/audit/export" {
            label { span { (ctx.t("导出记录号从", "Export from seq")) } input type="number" name="from" min="1" value="1"; }
            label { span { (ctx.t("至", "to")) } input type="number" name="to" min="1" value=(ctx.app.journal.head_seq()); }
            button type="submit" { (ctx.t("导出此范围", "Export this range")) }
        }
        table id="records" {
            tr { th.num { (ctx.t("记录号", "Seq")) } th { (ctx.t("时间", "When")) } th { (ctx.t("操作人", "Actor")) } th { (ctx.t("操作", "Action")) }
                 th { (ctx.t("对象", "Object")) } th { (ctx.t("结果", "Outcome")) } th { (ctx.t("详情", "Details")) } }
            @for r in &page_of.records {
                tr { td.num { (r.seq) } td { (when(ctx, r.time_ms)) } td { (r.actor.account) } td { code { (r.action) } }
                     td { @if let Some(id) = r.object.strip_prefix("seal:") { a href={"/console/seals/" (encode(id))} { code { (r.object) } } } @else { code { (r.object) } } }
                     td { @if r.outcome == "ok" { span.badge.ok { "ok" } } @else { span.badge.bad { (r.outcome) } } }
                     td.mono { (details(&r.details)) } }
            }
        }
        @if page_of.records.is_empty() { p.muted { (ctx.t("没有符合条件的记录。", "No record matches.")) } }
        (pager(ctx, &link, page_of.next.as_deref()))
    };
    ok(page(ctx, ctx.t("审计日志", "Journal"), body))
}

/// A record's details in one short line.
fn details(d: &std::collections::BTreeMap<String, serde_json::Value>) -> String {
    let mut s = String::new();
    for (k, v) in d {
        let v = match v {
            serde_json::Value::String(t) => t.clone(),
            other => other.to_string(),
        };
        s.push_str(&format!("{k}={v} "));
        if s.chars().count() > 160 {
            return s.chars().take(160).collect::<String>() + "…";
        }
    }
    s
}

/// A `datetime-local` value (the appliance's local time) as ms since the epoch.
fn local_time(v: &str, offset: i8) -> Result<u64, Refusal> {
    let bad = || Refusal::bad(format!("'{v}' is not a time like 2026-12-01T09:30"));
    let f = time::format_description::parse_borrowed::<2>("[year]-[month]-[day]T[hour]:[minute]").map_err(|_| bad())?;
    let fs = time::format_description::parse_borrowed::<2>("[year]-[month]-[day]T[hour]:[minute]:[second]")
        .map_err(|_| bad())?;
    let t =
        time::PrimitiveDateTime::parse(v, &fs).or_else(|_| time::PrimitiveDateTime::parse(v, &f)).map_err(|_| bad())?;
    let t = t.assume_offset(time::UtcOffset::from_hms(offset, 0, 0).unwrap_or(time::UtcOffset::UTC));
    u64::try_from(t.unix_timestamp_nanos() / 1_000_000).map_err(|_| Refusal::bad(format!("'{v}' is before 1970")))
}

/// The whole journal verified with the audit key.
pub(crate) async fn audit_verify(ctx: &Ctx) -> Reply {
    let r = with(ctx, |r, p| r.trail().audit_verify(p)).await?;
    let body = html! {
        @if r.ok() { div.notice id="chain-ok" { (ctx.t("审计链完整：每条记录的哈希链接与签名检查点均验证通过。", "The chain is whole: every record's hash link and every signed checkpoint verified.")) } }
        @else { div.refusal id="chain-bad" { (ctx.t("审计链验证失败。", "The chain does not verify.")) } }
        dl.fields {
            dt { (ctx.t("记录数", "Records")) } dd { (r.records) }
            dt { (ctx.t("最后记录号", "Last seq")) } dd { (r.last_seq) }
            dt { (ctx.t("签名检查点", "Signed checkpoints")) } dd { (r.checkpoints) }
            dt { (ctx.t("签名覆盖至", "Signed through")) } dd { (r.signed_through.map(|s| s.to_string()).unwrap_or_else(|| "—".into())) }
            dt { (ctx.t("已核对签名", "Signatures checked")) } dd { (if r.signatures_checked { ctx.t("是", "yes") } else { ctx.t("否", "no") }) }
            @if let Some(f) = &r.finding {
                dt { (ctx.t("问题", "Finding")) } dd { (ctx.t("记录号 ", "at seq ")) (f.seq) ": " (format!("{:?}", f.kind)) " — " (f.detail) }
            }
        }
        p { a href="/console/audit" { (ctx.t("返回审计日志", "Back to the journal")) } }
    };
    ok(page(ctx, ctx.t("审计链验证", "Chain verification"), body))
}
