//! Sealing a document by hand (unit administrators granted a seal): upload an OFD, see its pages,
//! place the seal by clicking on the page, download the sealed file. The upload waits in a draft
//! (in memory, the uploader's only, for [`DRAFT_TTL`]) between the steps; the seal's use goes
//! through the same gate, recipe and usage record as the API's `seal-ofd`.

use super::form::{Form, Query};
use super::view::{csrf, page};
use super::{with, Answer, Ctx, Refusal, Reply};
use crate::seal::SealState;
use bytes::Bytes;
use hyper::StatusCode;
use maud::{html, Markup};
use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// How long an upload waits to be sealed.
pub(crate) const DRAFT_TTL: Duration = Duration::from_secs(30 * 60);
/// Drafts kept at once (each at most `[server] max_document_bytes`), and per account.
const MAX_DRAFTS: usize = 16;
const MAX_DRAFTS_EACH: usize = 4;

/// Uploads waiting to be placed and sealed, and sealed files waiting to be downloaded.
#[derive(Default)]
pub(crate) struct Drafts(Mutex<HashMap<String, Draft>>);

#[derive(Clone, Debug)]
struct Draft {
    account: String,
    seal: String,
    name: String,
    document: Bytes,
    pages: usize,
    created: Instant,
    /// Being sealed now (a second submit waits for nothing and is refused).
    sealing: bool,
    /// Once sealed: the sealed package, the signature's id and the usage record's seq.
    sealed: Option<(Bytes, String, u64)>,
}

impl Draft {
    /// Whether it is `account`'s and has not expired.
    fn waits_for(&self, account: &str) -> bool {
        self.account == account && self.created.elapsed() < DRAFT_TTL
    }
}

impl Drafts {
    fn put(&self, d: Draft) -> Result<String, Refusal> {
        let mut all = self.0.lock().unwrap_or_else(|p| p.into_inner());
        all.retain(|_, x| x.created.elapsed() < DRAFT_TTL);
        if all.values().filter(|x| x.account == d.account).count() >= MAX_DRAFTS_EACH || all.len() >= MAX_DRAFTS {
            return Err(Refusal::new(
                StatusCode::TOO_MANY_REQUESTS,
                "too_many_drafts",
                "too many documents are waiting to be sealed: seal or let them expire (30 minutes) first",
            ));
        }
        let mut id = [0u8; 16];
        getrandom::getrandom(&mut id).expect("the system's random source is readable");
        let id = hex::encode(id);
        let _ = all.insert(id.clone(), d);
        Ok(id)
    }

    /// The caller's draft `id`.
    fn get(&self, account: &str, id: &str) -> Result<Draft, Refusal> {
        let all = self.0.lock().unwrap_or_else(|p| p.into_inner());
        all.get(id).filter(|d| d.waits_for(account)).cloned().ok_or_else(|| {
            Refusal::new(
                StatusCode::NOT_FOUND,
                "unknown_draft",
                "no such upload: it was sealed, or it expired after 30 minutes",
            )
        })
    }

    /// The caller's draft `id`, marked as being sealed: one seal per upload, whatever is submitted
    /// twice.
    fn begin(&self, account: &str, id: &str) -> Result<Draft, Refusal> {
        let mut all = self.0.lock().unwrap_or_else(|p| p.into_inner());
        let d = all.get_mut(id).filter(|d| d.waits_for(account)).ok_or_else(|| {
            Refusal::new(
                StatusCode::NOT_FOUND,
                "unknown_draft",
                "no such upload: it was sealed, or it expired after 30 minutes",
            )
        })?;
        if d.sealing || d.sealed.is_some() {
            return Err(Refusal::new(
                StatusCode::CONFLICT,
                "draft_sealed",
                "this upload is sealed already (or being sealed)",
            ));
        }
        d.sealing = true;
        Ok(d.clone())
    }

    /// The end of a sealing: its result kept for the download, or the draft ready again.
    fn finish(&self, id: &str, result: Option<(Bytes, String, u64)>) {
        if let Some(d) = self.0.lock().unwrap_or_else(|p| p.into_inner()).get_mut(id) {
            d.sealing = false;
            if let Some(r) = result {
                d.document = Bytes::new();
                d.sealed = Some(r);
            }
        }
    }

    /// Drops the caller's draft `id`.
    fn discard(&self, account: &str, id: &str) {
        let mut all = self.0.lock().unwrap_or_else(|p| p.into_inner());
        if all.get(id).is_some_and(|d| d.account == account && !d.sealing) {
            let _ = all.remove(id);
        }
    }
}

fn ok(m: Markup) -> Reply {
    Ok(Answer::Page(StatusCode::OK, m))
}

/// The upload form: a seal of the unit, the document, its name.
pub(crate) async fn form(ctx: &Ctx) -> Reply {
    let (seals, _) =
        with(ctx, |r, p| r.lifecycle().list_seals_page(p, (Some(SealState::Active), None, None), None, 100)).await?;
    let body = html! {
        p.muted { (ctx.t("只能使用已授权给您的印章；每次盖章都记入用印记录和审计日志。", "Only seals granted to you can be used; every sealing is in the usage records and the journal.")) }
        @if seals.is_empty() { p.refusal { (ctx.t("您没有被授权使用任何在用印章：请本单位的另一名印章管理员授权。", "No active seal is granted to you: another administrator of your unit grants one.")) } }
        form.box method="post" action="/console/seal-document" enctype="multipart/form-data" {
            (csrf(ctx))
            label { span { (ctx.t("印章", "Seal")) } select name="seal" required {
                @for s in &seals { option value=(s.id) { (s.name) " (" (s.id) ")" } }
            } }
            label { span { (ctx.t("OFD 文档", "OFD document")) } input type="file" name="document" accept=".ofd,application/ofd" required; }
            label { span { (ctx.t("文档名称", "Document name")) } input type="text" name="name" size="40"; }
            button.primary type="submit" { (ctx.t("上传并选择位置", "Upload and place")) }
        }
    };
    ok(page(ctx, ctx.t("文档盖章", "Seal a document"), body))
}

/// An upload: read enough to know its pages, kept as a draft, then its first page.
pub(crate) async fn upload(ctx: &Ctx, f: Form) -> Reply {
    let up = f.file("document").ok_or_else(|| Refusal::bad(ctx.t("请选择 OFD 文档", "choose an OFD document")))?;
    let document = up.bytes.clone();
    let name = f.opt("name").unwrap_or_else(|| up.name.clone());
    let seal = f.need("seal", ctx.t("印章", "the seal"))?;
    // Only a holder of the seal's grant keeps a document here (the gate decides again when sealing).
    let seal2 = seal.clone();
    if !with(ctx, move |r, p| r.uses().holds_grant(p, &seal2)).await? {
        return Err(Refusal::new(StatusCode::FORBIDDEN, "no_grant", "you hold no grant on this seal"));
    }
    let _slot = ctx.document_slot().await?;
    let doc = document.clone();
    let pages = crate::api::blocking(move || {
        crate::formats::ofd::Unsealed::open(&doc, crate::formats::ofd::Limits::DEFAULT).map(|u| u.page_count())
    })
    .await?
    .map_err(|e| Refusal::bad(e.to_string()))?;
    let draft = Draft {
        account: ctx.p.account.clone(),
        seal,
        name,
        document,
        pages,
        created: Instant::now(),
        sealing: false,
        sealed: None,
    };
    let id = ctx.app.console.drafts.put(draft)?;
    Ok(Answer::Redirect(format!("/console/seal-document/{id}?page=1")))
}

/// A page of the draft drawn, to click where the seal goes.
pub(crate) async fn place(ctx: &Ctx, id: &str, q: &Query) -> Reply {
    let d = ctx.app.console.drafts.get(&ctx.p.account, id)?;
    if d.sealed.is_some() {
        return Ok(Answer::Redirect(format!("/console/seal-document/{id}/done")));
    }
    let n: u32 = q.get("page").unwrap_or("1").parse().map_err(|_| Refusal::bad("page must be a number"))?;
    let seal_id = d.seal.clone();
    let s = with(ctx, move |r, p| r.lifecycle().get_seal(p, &seal_id)).await?;
    let _slot = ctx.document_slot().await?;
    let doc = d.document.clone();
    let preview = crate::api::blocking(move || {
        let mut u = crate::formats::ofd::Unsealed::open(&doc, crate::formats::ofd::Limits::DEFAULT)?;
        u.preview(n)
    })
    .await?
    .map_err(|e| Refusal::bad(e.to_string()))?;
    let (w, h) = preview.size_mm;
    let (sw, sh) = (s.image.width_mm, s.image.height_mm);
    let body = html! {
        p { (ctx.t("文档：", "Document: ")) strong { (d.name) } " · " (ctx.t("印章：", "Seal: ")) (s.name) }
        p.pages {
            (ctx.t("页：", "Page: "))
            @for i in 1..=d.pages.min(200) {
                @if i as u32 == n { strong { (i) } } @else { a href={"/console/seal-document/" (id) "?page=" (i)} { (i) } }
                " "
            }
        }
        div.row {
            svg id="page" class="ofd-page" xmlns="http://www.w3.org/2000/svg" viewBox={"0 0 " (w) " " (h)}
                width={(w * 2.0) "px"} height={(h * 2.0) "px"} data-seal-w=(sw) data-seal-h=(sh) {
                rect x="0" y="0" width=(w) height=(h) fill="#fff" stroke="#999" stroke-width="0.3" {}
                @for (x, y, bw, bh) in &preview.boxes {
                    rect x=(x) y=(y) width=(bw) height=(bh) fill="none" stroke="#c8ccd0" stroke-width="0.2" {}
                }
                @for (x, y, size, text) in &preview.texts {
                    text x=(x) y=(y) font-size=(size) fill="#333" { (text) }
                }
                rect id="marker" x="-1000" y="-1000" width=(sw) height=(sh) fill="#b42318" fill-opacity="0.25" stroke="#b42318" stroke-width="0.4" {}
            }
            form.box method="post" action={"/console/seal-document/" (id)} {
                (csrf(ctx))
                input type="hidden" name="page" value=(n);
                p.muted { (ctx.t("在页面上点击印章中心的位置，或填写印章左上角的坐标（毫米）。", "Click where the seal's centre goes, or give its top-left corner in mm.")) }
                label { span { "x (mm)" } input type="number" name="x" step="0.1" min="0" max=(w) required; }
                label { span { "y (mm)" } input type="number" name="y" step="0.1" min="0" max=(h) required; }
                label { input type="checkbox" name="final"; " " (ctx.t("终结签章（此后不得再盖章）", "Final (no seal may follow)")) }
                label { span { (ctx.t("审批单号（如需）", "Ticket (if needed)")) } input type="text" name="ticket"; }
                button.primary type="submit" { (ctx.t("盖章", "Seal")) }
            }
            form method="post" action={"/console/seal-document/" (id) "/discard"} {
                (csrf(ctx)) button type="submit" { (ctx.t("放弃此文档", "Discard this upload")) }
            }
        }
        script src="/console/static/console.js" {}
    };
    ok(page(ctx, ctx.t("选择盖章位置", "Place the seal"), body))
}

/// The seal placed and applied, through the same recipe as the API.
pub(crate) async fn apply(ctx: &Ctx, id: &str, f: Form) -> Reply {
    let mm = |k: &str| -> Result<f64, Refusal> {
        f.number::<f64>(k, k)?.filter(|v| v.is_finite()).ok_or_else(|| Refusal::bad(format!("{k} is required")))
    };
    let placement = crate::formats::ofd::Placement {
        page: f.number("page", "page")?.unwrap_or(1),
        x_mm: mm("x")?,
        y_mm: mm("y")?,
        riding: false,
        final_seal: f.checked("final"),
    };
    let ticket = f.opt("ticket");
    let d = ctx.app.console.drafts.begin(&ctx.p.account, id)?;
    let _slot = match ctx.document_slot().await {
        Ok(slot) => slot,
        Err(e) => {
            ctx.app.console.drafts.finish(id, None);
            return Err(e);
        }
    };
    let (app, p, seal, name, doc) =
        (ctx.app.clone(), ctx.p.clone(), d.seal.clone(), d.name.clone(), d.document.clone());
    let sealed = crate::api::blocking(move || {
        let req = crate::signing::OfdRequest {
            document: &doc,
            placement,
            name: Some(&name),
            ticket: ticket.as_deref(),
            timestamp: false,
        };
        app.signing.seal_ofd(&p, &seal, req)
    })
    .await;
    let sealed = match sealed {
        Ok(Ok(s)) => s,
        Ok(Err(e)) => {
            ctx.app.console.drafts.finish(id, None);
            return Err(crate::api::ApiError::from(e).into());
        }
        Err(e) => {
            ctx.app.console.drafts.finish(id, None);
            return Err(e.into());
        }
    };
    ctx.app.console.drafts.finish(id, Some((Bytes::from(sealed.document), sealed.signature_id, sealed.audit_seq)));
    Ok(Answer::Redirect(format!("/console/seal-document/{id}/done")))
}

/// An upload given up.
pub(crate) async fn discard(ctx: &Ctx, id: &str) -> Reply {
    ctx.app.console.drafts.discard(&ctx.p.account, id);
    Ok(Answer::Redirect("/console/seal-document".into()))
}

/// Sealed: the download, and what was recorded.
pub(crate) async fn done(ctx: &Ctx, id: &str) -> Reply {
    let d = ctx.app.console.drafts.get(&ctx.p.account, id)?;
    let Some((_, signature, seq)) = &d.sealed else {
        return Ok(Answer::Redirect(format!("/console/seal-document/{id}?page=1")));
    };
    let body = html! {
        div.notice id="sealed" {
            p { (ctx.t("已盖章：", "Sealed: ")) strong { (d.name) } }
            p { (ctx.t("签章标识 ", "Signature ")) code { (signature) } " · " (ctx.t("用印记录号 ", "usage record ")) code { (seq) } }
        }
        p { a.btn.primary id="download" href={"/console/seal-document/" (id) "/file"} { (ctx.t("下载已盖章文档", "Download the sealed document")) } " "
            a href="/console/seal-document" { (ctx.t("再盖一份", "Seal another")) } }
        p.muted { (ctx.t("下载链接 30 分钟内有效。", "The download stays for 30 minutes.")) }
    };
    ok(page(ctx, ctx.t("盖章完成", "Sealed"), body))
}

/// The sealed package.
pub(crate) async fn file(ctx: &Ctx, id: &str) -> Reply {
    let d = ctx.app.console.drafts.get(&ctx.p.account, id)?;
    let (bytes, _, _) =
        d.sealed.ok_or_else(|| Refusal::new(StatusCode::NOT_FOUND, "unknown_draft", "not sealed yet"))?;
    let stem = d.name.trim_end_matches(".ofd").trim_end_matches(".OFD");
    let name: String = format!("{stem}-sealed.ofd").chars().filter(|c| !c.is_control() && *c != '"').collect();
    Ok(Answer::File("application/ofd", Some(name), crate::api::Body::Left(http_body_util::Full::new(bytes))))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn draft(account: &str) -> Draft {
        Draft {
            account: account.into(),
            seal: "s".into(),
            name: "d.ofd".into(),
            document: Bytes::from_static(b"PK"),
            pages: 1,
            created: Instant::now(),
            sealing: false,
            sealed: None,
        }
    }

    #[test]
    fn a_draft_is_its_uploaders_and_is_sealed_once() {
        let drafts = Drafts::default();
        let id = drafts.put(draft("clerk")).unwrap();
        assert_eq!(drafts.get("keeper", &id).unwrap_err().code, "unknown_draft");
        let _ = drafts.begin("clerk", &id).unwrap();
        // A second submit while the first is sealing, or after it sealed, is refused.
        assert_eq!(drafts.begin("clerk", &id).unwrap_err().code, "draft_sealed");
        drafts.finish(&id, None);
        let _ = drafts.begin("clerk", &id).unwrap();
        drafts.finish(&id, Some((Bytes::from_static(b"sealed"), "s1".into(), 7)));
        assert_eq!(drafts.begin("clerk", &id).unwrap_err().code, "draft_sealed");
        assert!(drafts.get("clerk", &id).unwrap().document.is_empty(), "the upload is let go once sealed");
        // Four waiting per account; another's discard does nothing.
        for _ in 0..3 {
            let _ = drafts.put(draft("clerk")).unwrap();
        }
        assert_eq!(drafts.put(draft("clerk")).unwrap_err().code, "too_many_drafts");
        drafts.discard("keeper", &id);
        assert!(drafts.get("clerk", &id).is_ok());
        drafts.discard("clerk", &id);
        assert!(drafts.get("clerk", &id).is_err());
        let _ = drafts.put(draft("clerk")).unwrap();
    }
}
