//! The seals' pages: the list, a seal's detail with its timeline, the issuer's inbox and the
//! lifecycle actions (each confirmed on a page of its own), a unit administrator's application,
//! grants, policy, single-use approvals (tickets) and usage records with their CSV export.

use super::form::{encode, Form, Query};
use super::view::{self, badge, csrf, day, page, pager, when};
use super::{with, Answer, Ctx, Refusal, Reply};
use crate::authz::Role;
use crate::seal::{Action, ApplyRequest, Policy, Seal, SealKind, SealState, TicketRequest, TransitionRequest};
use hyper::StatusCode;
use maud::{html, Markup};

/// Seals per page.
const PAGE: usize = 50;

const KINDS: [(SealKind, &str); 7] = [
    (SealKind::Official, "official"),
    (SealKind::Finance, "finance"),
    (SealKind::Contract, "contract"),
    (SealKind::Invoice, "invoice"),
    (SealKind::Business, "business"),
    (SealKind::LegalRepresentative, "legal_representative"),
    (SealKind::Personal, "personal"),
];

fn ok(m: Markup) -> Reply {
    Ok(Answer::Page(StatusCode::OK, m))
}

fn back_to(id: &str) -> Reply {
    Ok(Answer::Redirect(format!("/console/seals/{}", encode(id))))
}

/// The list, filtered by state, unit and expiry, a page at a time.
pub(crate) async fn list(ctx: &Ctx, q: &Query) -> Reply {
    let state = q.get("state").map(|s| s.parse::<SealState>()).transpose().map_err(Refusal::bad)?;
    let unit = q.get("unit").map(str::to_string);
    let expiring = q
        .get("expiring")
        .map(|d| d.parse::<u64>())
        .transpose()
        .map_err(|_| Refusal::bad(ctx.t("到期天数须为数字", "expiring must be a number of days").to_string()))?;
    let cursor = q.get("cursor").map(str::to_string);
    let unit2 = unit.clone();
    let (seals, next, filings, counts) = with(ctx, move |r, p| {
        let (seals, next) =
            r.lifecycle().list_seals_page(p, (state, unit2.as_deref(), expiring), cursor.as_deref(), PAGE)?;
        let ids: Vec<&str> = seals.iter().map(|s| s.id.as_str()).collect();
        let filings = r.filings().latest_for(p, &ids)?;
        let counts = seals.iter().map(|s| r.uses().use_counts(&s.id)).collect::<Result<Vec<_>, _>>()?;
        Ok((seals, next, filings, counts))
    })
    .await?;
    let now = crate::seal::now_ms();
    let mut base = String::from("/console/seals?");
    for (k, v) in [
        ("state", state.map(|s| s.name().to_string())),
        ("unit", unit.clone()),
        ("expiring", expiring.map(|d| d.to_string())),
    ] {
        if let Some(v) = v {
            base.push_str(&format!("{k}={}&", encode(&v)));
        }
    }
    let base = base.trim_end_matches(['&', '?']).to_string();
    let filed = matches!(ctx.p.role, Role::Issuer | Role::Auditor);
    let body = html! {
        form.filters method="get" action="/console/seals" {
            label { span { (ctx.t("状态", "State")) } select name="state" {
                option value="" { (ctx.t("全部", "All")) }
                @for s in SealState::ALL { option value=(s.name()) selected[state == Some(s)] { (view::state(ctx.lang, s)) } }
            } }
            @if ctx.p.role != Role::UnitAdmin {
                label { span { (ctx.t("单位", "Unit")) } input type="text" name="unit" value=[unit.as_deref()]; }
            }
            label { span { (ctx.t("到期(天内)", "Expiring within (days)")) } input type="number" name="expiring" min="0" value=[expiring]; }
            button type="submit" { (ctx.t("筛选", "Filter")) }
            @if ctx.p.role == Role::UnitAdmin { a href="/console/seals/new" { (ctx.t("申请新印章", "Apply for a seal")) } }
        }
        @if seals.is_empty() { p.muted { (ctx.t("没有符合条件的印章。", "No seal matches.")) } }
        @else {
            table id="seals" {
                tr {
                    th { (ctx.t("印模", "Image")) } th { (ctx.t("名称", "Name")) } th { (ctx.t("类型", "Kind")) }
                    th { (ctx.t("单位", "Unit")) } th { (ctx.t("状态", "State")) } th { (ctx.t("有效期至", "Valid until")) }
                    th { (ctx.t("密钥版本", "Key version")) } @if filed { th { (ctx.t("备案", "Filing")) } }
                    th.num { (ctx.t("今日/累计使用", "Uses today / all")) } th { (ctx.t("限额", "Limits")) }
                }
                @for (s, (today, total)) in seals.iter().zip(&counts) {
                    tr data-seal=(s.id) {
                        td { img.seal src={"/console/seals/" (encode(&s.id)) "/image"} alt=(s.name); }
                        td { a href={"/console/seals/" (encode(&s.id))} { (s.name) } br; code.muted { (s.id) } }
                        td { (kind(ctx, s.kind)) }
                        td { (s.unit) }
                        td { (badge(ctx.lang, s.state)) @if s.expired(now) { " " span.badge.bad { (ctx.t("已过期", "expired")) } } }
                        td { @if let Some(v) = s.current() { (day(ctx, v.not_after_ms)) } @else { "—" } }
                        td { @if let Some(v) = s.current() { "v" (v.version) } @else { "—" } }
                        @if filed { td { (filing(ctx, filings.get(&s.id), now)) } }
                        td.num { (today) " / " (total) }
                        td { (limits(ctx, &s.policy)) }
                    }
                }
            }
        }
        (pager(ctx, &base, next.as_deref()))
    };
    ok(page(ctx, ctx.t("印章", "Seals"), body))
}

/// A key version's state.
pub(crate) fn key_state(ctx: &Ctx, s: crate::seal::KeyState) -> &'static str {
    match s {
        crate::seal::KeyState::Pending => ctx.lang.t("待启用", "pending"),
        crate::seal::KeyState::Active => ctx.lang.t("使用中", "active"),
        crate::seal::KeyState::Retired => ctx.lang.t("已停用", "retired"),
        crate::seal::KeyState::Destroyed => ctx.lang.t("已销毁", "destroyed"),
    }
}

fn kind(ctx: &Ctx, k: SealKind) -> String {
    match ctx.lang {
        view::Lang::Zh => k.label().to_string(),
        view::Lang::En => KINDS.iter().find(|(x, _)| *x == k).map(|(_, n)| n.replace('_', " ")).unwrap_or_default(),
    }
}

fn limits(ctx: &Ctx, p: &Policy) -> Markup {
    html! {
        @if let Some(d) = p.daily_limit { (ctx.t("每日 ", "daily ")) (d) " " }
        @if let Some(t) = p.total_limit { (ctx.t("累计 ", "total ")) (t) " " }
        @if let Some([a, b]) = p.hours { (a) ":00–" (b) ":00 " }
        @if p.require_approval { span.badge.warn { (ctx.t("逐次审批", "per-use approval")) } }
        @if p.daily_limit.is_none() && p.total_limit.is_none() && p.hours.is_none() && !p.require_approval { span.muted { (ctx.t("不限", "none")) } }
    }
}

fn filing(ctx: &Ctx, f: Option<&crate::seal::Filing>, now: u64) -> Markup {
    let deadline = ctx.app.signing.registry().settings().filing_deadline_hours * 3_600_000;
    html! {
        @match f {
            None => span.muted { "—" },
            Some(f) if f.state == crate::seal::FilingState::Acked => span.badge.ok { (ctx.t("已备案", "filed")) },
            Some(f) if f.overdue(now, deadline) => span.badge.bad { (ctx.t("逾期未备案", "overdue")) },
            Some(f) => {
                @let left_h = (f.created_ms + deadline).saturating_sub(now) / 3_600_000;
                span.badge.warn { (ctx.t("待备案", "pending")) " · " (ctx.t("剩", "")) (left_h) (ctx.t(" 小时", " h left")) }
            }
        }
    }
}

/// A seal's picture, from the registry.
pub(crate) async fn image(ctx: &Ctx, id: &str) -> Reply {
    let id = id.to_string();
    let s = with(ctx, move |r, p| r.lifecycle().get_seal(p, &id)).await?;
    use base64::Engine as _;
    let bytes = base64::engine::general_purpose::STANDARD
        .decode(&s.image.data)
        .map_err(|_| Refusal::new(StatusCode::INTERNAL_SERVER_ERROR, "internal", "the stored picture is not base64"))?;
    let ct = match s.image.image_type.as_str() {
        "png" => "image/png",
        "gif" => "image/gif",
        "jpg" => "image/jpeg",
        _ => "image/svg+xml",
    };
    Ok(Answer::File(ct, None, crate::api::Body::Left(http_body_util::Full::new(bytes.into()))))
}

/// What each role may do to a seal in each state: the buttons offered (the registry decides).
fn actions_for(role: Role, s: SealState) -> Vec<Action> {
    if role != Role::Issuer {
        return Vec::new();
    }
    Action::ALL.into_iter().filter(|a| a.from_states().contains(&s) && *a != Action::Change).collect()
}

/// A seal: picture, fields, certificates, key versions, policy and grants, the timeline.
pub(crate) async fn detail(ctx: &Ctx, id: &str) -> Reply {
    let id2 = id.to_string();
    let (s, grants, counts, last_filing) = with(ctx, move |r, p| {
        let s = r.lifecycle().get_seal(p, &id2)?;
        let grants = match r.lifecycle().grants_page(&id2, None, 200) {
            Ok((g, _)) => g,
            Err(e) => return Err(e),
        };
        let counts = r.uses().use_counts(&id2)?;
        let filing = r.filings().latest_for(p, &[id2.as_str()])?.remove(&id2);
        Ok((s, grants, counts, filing))
    })
    .await?;
    let now = crate::seal::now_ms();
    let l = ctx.lang;
    let unit_admin = ctx.p.role == Role::UnitAdmin;
    let sid = encode(&s.id);
    let body = html! {
        div.row {
            img.seal-large src={"/console/seals/" (sid) "/image"} alt=(s.name);
            dl.fields {
                dt { (ctx.t("印章编码", "Seal code (esID)")) } dd { code { (s.id) } }
                dt { (ctx.t("名称", "Name")) } dd { (s.name) }
                dt { (ctx.t("类型", "Kind")) } dd { (kind(ctx, s.kind)) }
                dt { (ctx.t("单位", "Unit")) } dd { (s.unit) }
                dt { (ctx.t("状态", "State")) } dd id="state" { (badge(l, s.state)) }
                dt { (ctx.t("印模尺寸", "Size")) } dd { (s.image.width_mm) " × " (s.image.height_mm) " mm, " (s.image.image_type) }
                dt { (ctx.t("印模 SM3", "Image SM3")) } dd { code { (s.image.sm3) } }
                dt { (ctx.t("算法", "Algorithm")) } dd { (s.alg.name()) }
                dt { (ctx.t("证书有效期", "Certificate validity")) } dd { (s.valid_days) (ctx.t(" 天", " days")) @if s.expired(now) { " " span.badge.bad { (ctx.t("已过期", "expired")) } } }
                @if matches!(ctx.p.role, Role::Issuer | Role::Auditor) { dt { (ctx.t("备案", "Filing")) } dd { (filing(ctx, last_filing.as_ref(), now)) } }
                dt { (ctx.t("使用次数", "Uses")) } dd { (ctx.t("今日 ", "today ")) (counts.0) (ctx.t("，累计 ", ", in all ")) (counts.1) }
                @if let Some(r) = &s.replaces { dt { (ctx.t("替换", "Replaces")) } dd { a href={"/console/seals/" (encode(r))} { (r) } } }
                @if let Some(r) = &s.replaced_by { dt { (ctx.t("被替换为", "Replaced by")) } dd { a href={"/console/seals/" (encode(r))} { (r) } } }
            }
        }
        @let acts = actions_for(ctx.p.role, s.state);
        @if !acts.is_empty() {
            h2 { (ctx.t("操作", "Actions")) }
            p {
                @for a in acts {
                    a href={"/console/seals/" (sid) "/confirm?action=" (a.name())} class={"btn" @if matches!(a, Action::Revoke | Action::Freeze | Action::Reject) { " danger" }} { (view::action(l, a.name())) }
                    " "
                }
            }
        }
        @if ctx.p.role == Role::Issuer && Action::Change.from_states().contains(&s.state) {
            details {
                summary { (ctx.t("变更印章（新名称或新印模，原印章注销）", "Change the seal (a new name or picture; this one is revoked)")) }
                form.box method="post" action={"/console/seals/" (sid) "/change"} enctype="multipart/form-data" {
                    (csrf(ctx))
                    label { span { (ctx.t("新名称", "New name")) } input type="text" name="name" size="40" value=(s.name); }
                    label { span { (ctx.t("新印模（可选）", "New picture (optional)")) } input type="file" name="image" accept="image/png,image/gif,image/jpeg,image/svg+xml"; }
                    label { span { (ctx.t("印模宽 (mm)", "Width (mm)")) } input type="number" name="width_mm" value=(s.image.width_mm) step="0.1"; }
                    label { span { (ctx.t("印模高 (mm)", "Height (mm)")) } input type="number" name="height_mm" value=(s.image.height_mm) step="0.1"; }
                    label { span { (ctx.t("理由", "Reason")) } input type="text" name="reason" size="40" required; }
                    button.danger type="submit" { (ctx.t("变更", "Change")) }
                }
            }
        }
        @if let Some(ses) = ses_fields(ctx, &s) { (ses) }
        h2 { (ctx.t("密钥版本与证书", "Key versions and certificates")) }
        @if s.versions.is_empty() { p.muted { (ctx.t("尚未制作。", "Not made yet.")) } }
        @else {
            table {
                tr { th { (ctx.t("版本", "Version")) } th { (ctx.t("状态", "State")) } th { (ctx.t("证书序列号", "Certificate serial")) } th { (ctx.t("起", "From")) } th { (ctx.t("止", "Until")) } th { (ctx.t("密钥标识", "Key id")) } }
                @for v in &s.versions {
                    tr { td { "v" (v.version) } td { (key_state(ctx, v.state)) } td { code { (v.cert_serial) } }
                         td { (when(ctx, v.not_before_ms)) } td { (when(ctx, v.not_after_ms)) } td { code { (v.key_id) } } }
                }
            }
            @if let Some(v) = s.current() { details { summary { (ctx.t("当前证书 (PEM)", "Current certificate (PEM)")) } pre.mono { (v.cert_pem) } } }
            @if ctx.p.role == Role::Issuer && matches!(s.state, SealState::Made | SealState::Active | SealState::Frozen) {
                details {
                    summary { (ctx.t("由外部 CA 签发证书", "A certificate from an outside CA")) }
                    p { a href={"/console/seals/" (sid) "/csr"} { (ctx.t("下载证书请求 (CSR)", "Download the certificate request (CSR)")) } }
                    form.box method="post" action={"/console/seals/" (sid) "/certificate"} enctype="multipart/form-data" {
                        (csrf(ctx))
                        label { span { (ctx.t("CA 签发的证书", "The CA's certificate")) } input type="file" name="certificate" accept=".pem,.crt,.cer" required; }
                        button.primary type="submit" { (ctx.t("绑定证书", "Bind the certificate")) }
                    }
                }
            }
        }
        h2 { (ctx.t("使用策略", "Use policy")) }
        p { (limits(ctx, &s.policy)) }
        @if unit_admin {
            form.box method="post" action={"/console/seals/" (sid) "/policy"} {
                (csrf(ctx))
                label { input type="checkbox" name="require_approval" checked[s.policy.require_approval]; " " (ctx.t("每次使用须经单位管理员审批", "Each use needs the unit administrator's approval")) }
                label { span { (ctx.t("每日限额", "Daily limit")) } input type="number" min="1" name="daily_limit" value=[s.policy.daily_limit]; }
                label { span { (ctx.t("累计限额", "Total limit")) } input type="number" min="1" name="total_limit" value=[s.policy.total_limit]; }
                label { span { (ctx.t("可用时段", "Hours")) } input type="number" min="0" max="24" name="hour_from" value=[s.policy.hours.map(|h| h[0])]; " – " input type="number" min="0" max="24" name="hour_to" value=[s.policy.hours.map(|h| h[1])]; }
                button.primary type="submit" { (ctx.t("保存策略", "Save the policy")) }
            }
        }
        h2 { (ctx.t("授权使用的应用", "Applications granted")) }
        @if grants.is_empty() { p.muted { (ctx.t("尚未授权任何应用。", "No application holds a grant.")) } }
        @else {
            table id="grants" {
                tr { th { (ctx.t("应用账户", "Application")) } th { (ctx.t("授权人", "Granted by")) } th { (ctx.t("时间", "When")) } @if unit_admin { th {} } }
                @for g in &grants {
                    tr { td { (g.account) } td { (g.granted_by) } td { (when(ctx, g.time_ms)) }
                        @if unit_admin { td { form.inline method="post" action={"/console/seals/" (sid) "/withdraw"} {
                            (csrf(ctx)) input type="hidden" name="account" value=(g.account);
                            button.danger type="submit" { (ctx.t("撤销授权", "Withdraw")) } } } } }
                }
            }
        }
        @if unit_admin {
            form.box method="post" action={"/console/seals/" (sid) "/grants"} {
                (csrf(ctx))
                label { span { (ctx.t("应用账户", "Application account")) } input type="text" name="account" required; }
                button.primary type="submit" { (ctx.t("授权使用", "Grant")) }
            }
            h2 { (ctx.t("单次用印审批", "Approve a single use")) }
            form.box method="post" action={"/console/seals/" (sid) "/tickets"} {
                (csrf(ctx))
                label { span { (ctx.t("应用账户", "Application")) } input type="text" name="app" required; }
                label { span { (ctx.t("文档摘要 (hex)", "Document digest (hex)")) } input type="text" name="digest" size="70" required; }
                label { span { (ctx.t("有效秒数", "Valid for (s)")) } input type="number" min="1" name="valid_s"; }
                button.primary type="submit" { (ctx.t("批准本次使用", "Approve this use")) }
            }
        }
        h2 { (ctx.t("用印记录", "Usage")) }
        p { a href={"/console/seals/" (sid) "/usage"} { (ctx.t("查看用印记录", "Read the usage records")) } " · "
            a href={"/console/seals/" (sid) "/usage.csv"} { (ctx.t("导出 CSV", "Export CSV")) } }
        h2 { (ctx.t("生命周期", "Timeline")) }
        table id="timeline" {
            tr { th { (ctx.t("时间", "When")) } th { (ctx.t("操作", "Action")) } th { (ctx.t("结果状态", "State")) } th { (ctx.t("操作人", "By")) } th { (ctx.t("理由", "Reason")) } }
            @for h in &s.history {
                tr { td { (when(ctx, h.time_ms)) } td { (view::action(l, &h.action)) } td { (badge(l, h.state)) } td { (h.by) } td { (h.reason.as_deref().unwrap_or("")) } }
            }
        }
        @if ctx.p.role == Role::Auditor {
            p { a href={"/console/audit?seal=" (sid)} { (ctx.t("在审计日志中查看此印章的全部记录", "This seal's records in the journal")) } }
        }
    };
    ok(page(ctx, &format!("{} · {}", ctx.t("印章", "Seal"), s.name), body))
}

/// The fields of the seal's current `SESeal` (GB/T 38540), read from its DER as a verifier would.
fn ses_fields(ctx: &Ctx, s: &Seal) -> Option<Markup> {
    use base64::Engine as _;
    let der = base64::engine::general_purpose::STANDARD.decode(s.current()?.ses.as_ref()?).ok()?;
    let ses = match crate::formats::ses::SesSeal::parse(&der) {
        Ok(ses) => ses,
        Err(e) => {
            return Some(html! { h2 { (ctx.t("电子印章数据", "The electronic seal")) } p.refusal { (e.to_string()) } })
        }
    };
    let i = &ses.info;
    let t = |at: std::time::SystemTime| {
        when(ctx, at.duration_since(std::time::UNIX_EPOCH).map(|d| d.as_millis() as u64).unwrap_or(0))
    };
    let maker = crate::formats::x509::Cert::parse(&ses.maker_cert).map(|c| c.subject_text()).unwrap_or_default();
    Some(html! {
        h2 { (ctx.t("电子印章数据 (SESeal)", "The electronic seal (SESeal)")) }
        dl.fields id="ses" {
            dt { (ctx.t("标准", "Standard")) } dd { @match ses.version { crate::formats::ses::SesVersion::V4 => "GB/T 38540-2020 (v4)", crate::formats::ses::SesVersion::V1 => "GM/T 0031-2014 (v1)" } }
            dt { (ctx.t("头标识 / 版本 / 厂商", "Header / version / vendor")) } dd { (i.header_id) " / " (i.version) " / " (i.vid) }
            dt { "esID" } dd { code { (i.es_id) } }
            dt { (ctx.t("印章类型", "Seal type")) } dd { (i.seal_type) }
            dt { (ctx.t("印章名称", "Name")) } dd { (i.name) }
            dt { (ctx.t("证书列表类型", "certListType")) } dd { (i.cert_list_type.map(|c| c.to_string()).unwrap_or_else(|| "—".into())) }
            dt { (ctx.t("制作日期", "Created")) } dd { (t(i.create_date.at)) }
            dt { (ctx.t("有效期", "Valid")) } dd { (t(i.valid_start.at)) " — " (t(i.valid_end.at)) }
            dt { (ctx.t("印模", "Picture")) } dd { (i.picture.kind) ", " (i.picture.width) " × " (i.picture.height) " mm, " (i.picture.data.len()) " bytes" }
            dt { (ctx.t("制章者", "Maker")) } dd { (maker) }
            dt { (ctx.t("签名算法", "Algorithm")) } dd { code { (ses.sign_alg) } }
        }
    })
}

/// The confirmation of a lifecycle action, with a reason.
pub(crate) async fn confirm(ctx: &Ctx, id: &str, q: &Query) -> Reply {
    let action: Action = q.get("action").unwrap_or("").parse().map_err(|_| Refusal::bad("no such action"))?;
    let id2 = id.to_string();
    let s = with(ctx, move |r, p| r.lifecycle().get_seal(p, &id2)).await?;
    let l = ctx.lang;
    let body = html! {
        div.box {
            p { (ctx.t("对印章", "On the seal")) " " strong { (s.name) } " (" code { (s.id) } ") "
                (ctx.t("执行：", "do: ")) strong { (view::action(l, action.name())) } }
            p { (ctx.t("当前状态：", "Its state now: ")) (badge(l, s.state)) " → " (badge(l, action.to_state(s.state))) }
            form method="post" action={"/console/seals/" (encode(&s.id)) "/act"} {
                (csrf(ctx))
                input type="hidden" name="action" value=(action.name());
                label { span { (ctx.t("理由", "Reason")) } input type="text" name="reason" size="60" required[matches!(action, Action::Reject | Action::Revoke | Action::Freeze)]; }
                button.primary type="submit" { (ctx.t("确认", "Confirm")) } " "
                a href={"/console/seals/" (encode(&s.id))} { (ctx.t("取消", "Cancel")) }
            }
        }
    };
    ok(page(ctx, ctx.t("确认操作", "Confirm"), body))
}

/// A confirmed lifecycle action.
pub(crate) async fn act(ctx: &Ctx, id: &str, f: Form) -> Reply {
    let action: Action = f.text("action").parse().map_err(|_| Refusal::bad("no such action"))?;
    let req = TransitionRequest { reason: f.opt("reason"), name: None, image: None };
    let id2 = id.to_string();
    let _ = with(ctx, move |r, p| r.lifecycle().transition(p, &id2, action, req)).await?;
    back_to(id)
}

/// The seal's certificate request (PEM), for an outside CA.
pub(crate) async fn csr(ctx: &Ctx, id: &str) -> Reply {
    let id2 = id.to_string();
    let pem = with(ctx, move |r, p| r.lifecycle().seal_csr(p, &id2)).await?;
    let body = crate::api::Body::Left(http_body_util::Full::new(pem.into_bytes().into()));
    Ok(Answer::File("application/pkcs10", Some(format!("seal-{}.csr", encode(id))), body))
}

/// The outside CA's certificate bound to the seal's key.
pub(crate) async fn certificate(ctx: &Ctx, id: &str, f: Form) -> Reply {
    let up =
        f.file("certificate").ok_or_else(|| Refusal::bad(ctx.t("请选择证书文件", "choose the certificate file")))?;
    let pem = String::from_utf8(up.bytes.to_vec()).map_err(|_| Refusal::bad("the certificate is not PEM text"))?;
    let id2 = id.to_string();
    let _ = with(ctx, move |r, p| r.lifecycle().import_certificate(p, &id2, &pem)).await?;
    back_to(id)
}

/// A change (变更): a new seal with the new name or picture replaces this one, which is revoked.
pub(crate) async fn change(ctx: &Ctx, id: &str, f: Form) -> Reply {
    let image = match f.file("image") {
        Some(up) => Some((
            up.bytes.to_vec(),
            up.name.to_ascii_lowercase().rsplit('.').next().unwrap_or("").to_string(),
            f.number("width_mm", "width_mm")?.unwrap_or(40.0),
            f.number("height_mm", "height_mm")?.unwrap_or(40.0),
        )),
        None => None,
    };
    let req = TransitionRequest { reason: f.opt("reason"), name: f.opt("name"), image };
    let id2 = id.to_string();
    let s = with(ctx, move |r, p| r.lifecycle().transition(p, &id2, Action::Change, req)).await?;
    // The answer is the new seal: its page.
    back_to(&s.id)
}

pub(crate) async fn grant(ctx: &Ctx, id: &str, f: Form) -> Reply {
    let (id2, account) = (id.to_string(), f.need("account", ctx.t("应用账户", "the account"))?);
    let _ = with(ctx, move |r, p| r.lifecycle().grant(p, &id2, &account)).await?;
    back_to(id)
}

pub(crate) async fn withdraw(ctx: &Ctx, id: &str, f: Form) -> Reply {
    let (id2, account) = (id.to_string(), f.need("account", "account")?);
    with(ctx, move |r, p| r.lifecycle().ungrant(p, &id2, &account)).await?;
    back_to(id)
}

pub(crate) async fn policy(ctx: &Ctx, id: &str, f: Form) -> Reply {
    let hours = match (f.number::<u8>("hour_from", "hour_from")?, f.number::<u8>("hour_to", "hour_to")?) {
        (Some(a), Some(b)) => Some([a, b]),
        (None, None) => None,
        _ => return Err(Refusal::bad(ctx.t("可用时段须填写起止两项", "hours need a start and an end"))),
    };
    let policy = Policy {
        require_approval: f.checked("require_approval"),
        daily_limit: f.number("daily_limit", "daily_limit")?,
        total_limit: f.number("total_limit", "total_limit")?,
        hours,
    };
    let id2 = id.to_string();
    let _ = with(ctx, move |r, p| r.lifecycle().set_policy(p, &id2, policy)).await?;
    back_to(id)
}

/// A single use approved: the page shows the ticket to hand to the application.
pub(crate) async fn ticket(ctx: &Ctx, id: &str, f: Form) -> Reply {
    let req = TicketRequest {
        app: f.need("app", "app")?,
        digest: f.need("digest", "digest")?,
        valid_s: f.number("valid_s", "valid_s")?,
    };
    let id2 = id.to_string();
    let t = with(ctx, move |r, p| r.uses().issue_ticket(p, &id2, req)).await?;
    let body = html! {
        div.notice {
            p { (ctx.t("已批准本次使用。请将审批单号交给应用：", "The use is approved. Give the application this ticket:")) }
            p { code id="ticket" { (t.id) } }
            p { (ctx.t("应用：", "Application: ")) (t.app) " · " (ctx.t("有效至 ", "valid until ")) (when(ctx, t.expires_ms)) }
        }
        p { a href={"/console/seals/" (encode(id))} { (ctx.t("返回印章", "Back to the seal")) } }
    };
    Ok(Answer::Page(StatusCode::CREATED, page(ctx, ctx.t("单次用印审批", "Single-use approval"), body)))
}

/// The form to apply for a seal (unit administrators).
pub(crate) async fn apply_form(ctx: &Ctx) -> Reply {
    let body = html! {
        form.box method="post" action="/console/seals" enctype="multipart/form-data" {
            (csrf(ctx))
            label { span { (ctx.t("印章名称", "Name")) } input type="text" name="name" size="40" required; }
            label { span { (ctx.t("类型", "Kind")) } select name="kind" {
                @for (k, n) in KINDS { option value=(n) { (kind(ctx, k)) } }
            } }
            label { span { (ctx.t("印模图片", "Picture")) } input type="file" name="image" accept="image/png,image/gif,image/jpeg,image/svg+xml" required; }
            label { span { (ctx.t("印模宽 (mm)", "Width (mm)")) } input type="number" name="width_mm" value="40" min="1" max="200" step="0.1"; }
            label { span { (ctx.t("印模高 (mm)", "Height (mm)")) } input type="number" name="height_mm" value="40" min="1" max="200" step="0.1"; }
            label { span { (ctx.t("证书有效期 (天)", "Validity (days)")) } input type="number" name="valid_days" value="365" min="1"; }
            label { span { (ctx.t("算法", "Algorithm")) } select name="alg" { option value="sm2" { "SM2" } option value="p256" { "ECDSA P-256" } } }
            button.primary type="submit" { (ctx.t("提交申请", "Apply")) }
        }
    };
    ok(page(ctx, ctx.t("申请印章", "Apply for a seal"), body))
}

/// An application posted.
pub(crate) async fn apply(ctx: &Ctx, f: Form) -> Reply {
    let image = f.file("image").ok_or_else(|| Refusal::bad(ctx.t("请选择印模图片", "choose the seal's picture")))?;
    let lower = image.name.to_ascii_lowercase();
    let image_type = lower.rsplit('.').next().unwrap_or("").to_string();
    let kind: SealKind = serde_json::from_value(serde_json::Value::String(f.text("kind").to_string()))
        .map_err(|_| Refusal::bad(format!("unknown kind '{}'", f.text("kind"))))?;
    let alg: crate::crypto::KeyAlg = serde_json::from_value(serde_json::Value::String(f.text("alg").to_string()))
        .map_err(|_| Refusal::bad(format!("unknown algorithm '{}'", f.text("alg"))))?;
    let req = ApplyRequest {
        name: f.need("name", ctx.t("印章名称", "the name"))?,
        kind,
        image: image.bytes.to_vec(),
        image_type,
        width_mm: f.number("width_mm", "width_mm")?.unwrap_or(40.0),
        height_mm: f.number("height_mm", "height_mm")?.unwrap_or(40.0),
        valid_days: f.number("valid_days", "valid_days")?.unwrap_or(365),
        alg,
        unit: None,
        policy: Policy::default(),
    };
    let s: Seal = with(ctx, move |r, p| r.lifecycle().apply(p, req)).await?;
    back_to(&s.id)
}

/// The issuer's inbox: applications to approve, seals to make and to publish, filings overdue.
pub(crate) async fn inbox(ctx: &Ctx) -> Reply {
    let (applied, approved, made) = with(ctx, |r, p| {
        let page = |st| r.lifecycle().list_seals_page(p, (Some(st), None, None), None, PAGE).map(|x| x.0);
        Ok((page(SealState::Applied)?, page(SealState::Approved)?, page(SealState::Made)?))
    })
    .await?;
    let l = ctx.lang;
    let section = |title: &str, seals: &[Seal], next: Action| {
        html! {
            h2 { (title) " (" (seals.len()) ")" }
            @if seals.is_empty() { p.muted { (ctx.t("无", "None")) } }
            @else {
                table.inbox {
                    tr { th { (ctx.t("印模", "Image")) } th { (ctx.t("名称", "Name")) } th { (ctx.t("单位", "Unit")) } th { (ctx.t("提交", "Since")) } th {} }
                    @for s in seals {
                        tr data-seal=(s.id) {
                            td { img.seal src={"/console/seals/" (encode(&s.id)) "/image"} alt=(s.name); }
                            td { a href={"/console/seals/" (encode(&s.id))} { (s.name) } br; code.muted { (s.id) } }
                            td { (s.unit) }
                            td { @if let Some(h) = s.history.last() { (when(ctx, h.time_ms)) } }
                            td {
                                a.btn.primary href={"/console/seals/" (encode(&s.id)) "/confirm?action=" (next.name())} { (view::action(l, next.name())) }
                                @if next == Action::Approve { " " a.btn.danger href={"/console/seals/" (encode(&s.id)) "/confirm?action=reject"} { (view::action(l, "reject")) } }
                            }
                        }
                    }
                }
            }
        }
    };
    let body = html! {
        (section(ctx.t("待审批的申请", "Applications to approve"), &applied, Action::Approve))
        (section(ctx.t("待制作", "To make"), &approved, Action::Make))
        (section(ctx.t("待发布", "To publish"), &made, Action::Publish))
        p.muted { (ctx.t("变更、续期、冻结与注销在印章详情页办理。", "Changes, renewals, freezes and revocations are on each seal's page.")) }
    };
    ok(page(ctx, ctx.t("待办审批", "Inbox"), body))
}

/// A seal's usage records, newest first, a page at a time.
pub(crate) async fn usage(ctx: &Ctx, id: &str, q: &Query) -> Reply {
    let (id2, cursor) = (id.to_string(), q.get("cursor").map(str::to_string));
    let (s, u) = with(ctx, move |r, p| {
        let u = r.uses().usage_page(p, &id2, cursor.as_deref(), true, 100)?;
        Ok((r.lifecycle().get_seal(p, &id2)?, u))
    })
    .await?;
    let body = html! {
        p { a href={"/console/seals/" (encode(id))} { "← " (s.name) } " · " a href={"/console/seals/" (encode(id)) "/usage.csv"} { (ctx.t("导出 CSV", "Export CSV")) } }
        table id="usage" {
            tr { th.num { (ctx.t("记录号", "Seq")) } th { (ctx.t("时间", "When")) } th { (ctx.t("应用", "Application")) } th { (ctx.t("结果", "Outcome")) }
                 th { (ctx.t("文档", "Document")) } th { (ctx.t("类型", "Product")) } th { (ctx.t("密钥版本", "Key")) } th { (ctx.t("摘要", "Digest")) } }
            @for e in &u.usage {
                tr { td.num { (e.seq) } td { (when(ctx, e.time_ms)) } td { (e.account) }
                     td { @if e.outcome == "ok" { span.badge.ok { (ctx.t("成功", "ok")) } } @else { span.badge.bad { (e.outcome) } } }
                     td.doc { (e.document_name.as_deref().unwrap_or("")) } td { (e.input.as_deref().unwrap_or("")) }
                     td { @if let Some(v) = e.key_version { "v" (v) } } td { code { (e.digest.as_deref().map(|d| d.get(..16).unwrap_or(d)).unwrap_or("")) } } }
            }
        }
        @if u.usage.is_empty() { p.muted { (ctx.t("暂无用印记录。", "No use yet.")) } }
        (pager(ctx, &format!("/console/seals/{}/usage", encode(id)), u.next_cursor.as_deref()))
    };
    ok(page(ctx, ctx.t("用印记录", "Usage records"), body))
}

/// Every usage record of a seal as CSV (UTF-8 with a BOM, so spreadsheet programs read the
/// Chinese), streamed a page at a time.
pub(crate) async fn usage_csv(ctx: &Ctx, id: &str) -> Reply {
    // The first page is read before answering, so a refusal is an ordinary page.
    let id2 = id.to_string();
    let first = with(ctx, move |r, p| r.uses().usage_page(p, &id2, None, false, crate::audit::MAX_PAGE)).await?;
    let (r, p, id2) = (ctx.app.signing.registry().clone(), ctx.p.clone(), id.to_string());
    let offset = r.settings().utc_offset_hours;
    let (mut w, body) = crate::api::StreamWriter::new();
    let _detached = tokio::task::spawn_blocking(move || {
        use std::io::Write as _;
        let mut page = first;
        let result = (|| -> Result<(), String> {
            let e = |e: std::io::Error| e.to_string();
            w.write_all(
                "\u{feff}seq,time,account,outcome,key_version,input,document_name,digest,ticket\r\n".as_bytes(),
            )
            .map_err(e)?;
            loop {
                for u in &page.usage {
                    let row = [
                        u.seq.to_string(),
                        view::rfc3339(u.time_ms, offset),
                        u.account.clone(),
                        u.outcome.clone(),
                        u.key_version.map(|v| v.to_string()).unwrap_or_default(),
                        u.input.clone().unwrap_or_default(),
                        u.document_name.clone().unwrap_or_default(),
                        u.digest.clone().unwrap_or_default(),
                        u.ticket.clone().unwrap_or_default(),
                    ];
                    let line: Vec<String> = row.iter().map(|c| csv_cell(c)).collect();
                    w.write_all(line.join(",").as_bytes()).map_err(e)?;
                    w.write_all(b"\r\n").map_err(e)?;
                }
                let Some(c) = page.next_cursor.take() else { break };
                page = r
                    .uses()
                    .usage_page(&p, &id2, Some(&c), false, crate::audit::MAX_PAGE)
                    .map_err(|x| x.to_string())?;
            }
            w.flush().map_err(e)
        })();
        if let Err(why) = result {
            tracing::error!(error = %why, "usage CSV cut short");
            w.fail(why);
        }
    });
    Ok(Answer::File(
        "text/csv; charset=utf-8",
        Some(format!("usage-{}.csv", encode(id))),
        crate::api::Body::Right(body),
    ))
}

/// A CSV cell: quoted when it must be, and never a formula to a spreadsheet program.
pub(crate) fn csv_cell(v: &str) -> String {
    let v = if v.starts_with(['=', '+', '-', '@', '\t', '\r']) { format!("'{v}") } else { v.to_string() };
    if v.contains([',', '"', '\r', '\n']) {
        format!("\"{}\"", v.replace('"', "\"\""))
    } else {
        v
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn csv_cells_are_quoted_and_never_formulas() {
        assert_eq!(super::csv_cell("合同.ofd"), "合同.ofd");
        assert_eq!(super::csv_cell("a,\"b\""), "\"a,\"\"b\"\"\"");
        assert_eq!(super::csv_cell("=1+1"), "'=1+1");
        assert_eq!(super::csv_cell("-x,y"), "\"'-x,y\"");
    }
}
