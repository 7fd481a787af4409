//! What a browser sends: the query of a page, and a posted form, as `application/x-www-form-urlencoded`
//! or, with a file, `multipart/form-data`. Both are bounded: a form within `[server]
//! max_body_bytes`, an upload within `max_document_bytes`, at most [`MAX_FIELDS`] fields.

use super::Refusal;
use crate::api::percent_decode;
use crate::api::App;
use bytes::Bytes;
use hyper::body::Incoming;
use hyper::{Request, StatusCode};

/// Fields a form may have.
const MAX_FIELDS: usize = 64;

/// A page's query: `key=value&...`, percent-decoded.
#[derive(Debug, Default, Clone)]
pub(crate) struct Query(Vec<(String, String)>);

impl Query {
    pub(crate) fn parse(q: &str) -> Self {
        Query(pairs(q).take(MAX_FIELDS).collect())
    }

    /// The first non-empty value of `key`.
    pub(crate) fn get(&self, key: &str) -> Option<&str> {
        self.0.iter().find(|(k, v)| k == key && !v.is_empty()).map(|(_, v)| v.as_str())
    }
}

fn pairs(q: &str) -> impl Iterator<Item = (String, String)> + '_ {
    q.split('&').filter(|p| !p.is_empty()).map(|p| {
        let (k, v) = p.split_once('=').unwrap_or((p, ""));
        (percent_decode(k), percent_decode(v))
    })
}

/// Percent-encodes a value for a link's query or path.
pub(crate) fn encode(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || b"-_.~".contains(&b) {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

/// An uploaded file.
#[derive(Debug, Clone)]
pub(crate) struct Upload {
    /// The name the browser gave it.
    pub name: String,
    /// Its bytes.
    pub bytes: Bytes,
}

/// A posted form.
#[derive(Debug, Default)]
pub(crate) struct Form {
    texts: Vec<(String, String)>,
    files: Vec<(String, Upload)>,
}

/// A form may carry a PIN: its text is wiped when the form goes.
impl Drop for Form {
    fn drop(&mut self) {
        use zeroize::Zeroize as _;
        for (_, v) in &mut self.texts {
            v.zeroize();
        }
    }
}

impl Form {
    /// Reads the body of a POST.
    pub(crate) async fn read(app: &App, req: Request<Incoming>) -> Result<Form, Refusal> {
        let content_type =
            req.headers().get(hyper::header::CONTENT_TYPE).and_then(|v| v.to_str().ok()).unwrap_or("").to_string();
        let essence = content_type.split(';').next().unwrap_or("").trim().to_ascii_lowercase();
        match essence.as_str() {
            "application/x-www-form-urlencoded" => {
                let body = crate::api::body_within(app, req, app.max_body).await?;
                let text = std::str::from_utf8(&body).map_err(|_| Refusal::bad("the form is not UTF-8"))?;
                let texts: Vec<_> = pairs(text).collect();
                if texts.len() > MAX_FIELDS {
                    return Err(Refusal::bad(format!("a form has at most {MAX_FIELDS} fields")));
                }
                Ok(Form { texts, files: Vec::new() })
            }
            "multipart/form-data" => {
                let boundary = multer::parse_boundary(&content_type)
                    .map_err(|e| Refusal::bad(format!("the form's boundary: {e}")))?;
                let max = app.max_document;
                let body = crate::api::body_within(app, req, max).await?;
                Self::multipart(body, boundary, max).await
            }
            "" => Ok(Form::default()),
            other => Err(Refusal::new(
                StatusCode::UNSUPPORTED_MEDIA_TYPE,
                "bad_media_type",
                format!("a form is urlencoded or multipart/form-data, not {other}"),
            )),
        }
    }

    async fn multipart(body: Bytes, boundary: String, max: usize) -> Result<Form, Refusal> {
        let limits = multer::Constraints::new()
            .size_limit(multer::SizeLimit::new().whole_stream(max as u64).per_field(max as u64).for_field("csrf", 256));
        let stream = futures_util::stream::once(async move { Ok::<Bytes, std::convert::Infallible>(body) });
        let mut parts = multer::Multipart::with_constraints(stream, boundary, limits);
        let mut form = Form::default();
        let bad = |e: multer::Error| Refusal::bad(format!("the form could not be read: {e}"));
        while let Some(field) = parts.next_field().await.map_err(bad)? {
            if form.texts.len() + form.files.len() >= MAX_FIELDS {
                return Err(Refusal::bad(format!("a form has at most {MAX_FIELDS} fields")));
            }
            let name = field.name().unwrap_or("").to_string();
            match field.file_name().map(str::to_string) {
                Some(file) => {
                    let bytes = field.bytes().await.map_err(bad)?;
                    form.files.push((name, Upload { name: file, bytes }));
                }
                None => {
                    let text = field.text().await.map_err(bad)?;
                    form.texts.push((name, text));
                }
            }
        }
        Ok(form)
    }

    /// The value of `key` (empty when absent).
    pub(crate) fn text(&self, key: &str) -> &str {
        self.texts.iter().find(|(k, _)| k == key).map(|(_, v)| v.as_str()).unwrap_or("")
    }

    /// The trimmed value of `key`, if not empty.
    pub(crate) fn opt(&self, key: &str) -> Option<String> {
        Some(self.text(key).trim()).filter(|v| !v.is_empty()).map(str::to_string)
    }

    /// The trimmed value of `key`, required.
    pub(crate) fn need(&self, key: &str, what: &str) -> Result<String, Refusal> {
        self.opt(key).ok_or_else(|| Refusal::bad(format!("{what} is required")))
    }

    /// A number field, if given.
    pub(crate) fn number<T: std::str::FromStr>(&self, key: &str, what: &str) -> Result<Option<T>, Refusal> {
        self.opt(key)
            .map(|v| v.parse::<T>().map_err(|_| Refusal::bad(format!("{what} must be a number, not '{v}'"))))
            .transpose()
    }

    /// Whether a checkbox was ticked.
    pub(crate) fn checked(&self, key: &str) -> bool {
        matches!(self.text(key), "on" | "true" | "1")
    }

    /// The file uploaded as `key`, if one was chosen.
    pub(crate) fn file(&self, key: &str) -> Option<&Upload> {
        self.files.iter().find(|(k, f)| k == key && !f.bytes.is_empty()).map(|(_, f)| f)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn queries_decode_and_values_encode_back() {
        let q = Query::parse("a=%E5%8D%B0+1&b=&c=x%2&a=2");
        assert_eq!(q.get("a"), Some("印 1"));
        assert_eq!(q.get("b"), None);
        assert_eq!(q.get("c"), Some("x%2"));
        assert_eq!(percent_decode(&encode("印 a/b?&=")), "印 a/b?&=");
    }

    #[tokio::test]
    async fn multipart_forms_are_read_within_their_limits() {
        let body = "--XX\r\nContent-Disposition: form-data; name=\"csrf\"\r\n\r\nabc\r\n\
                    --XX\r\nContent-Disposition: form-data; name=\"file\"; filename=\"a.ofd\"\r\n\
                    Content-Type: application/octet-stream\r\n\r\nPK\x03\x04data\r\n--XX--\r\n";
        let f = Form::multipart(Bytes::from(body), "XX".into(), 1 << 20).await.unwrap();
        assert_eq!(f.text("csrf"), "abc");
        let up = f.file("file").unwrap();
        assert_eq!((up.name.as_str(), &up.bytes[..]), ("a.ofd", &b"PK\x03\x04data"[..]));
        // Over the limit, cut short, or with too many fields: a clear refusal, never a panic.
        assert!(Form::multipart(Bytes::from(body), "XX".into(), 40).await.is_err());
        assert!(Form::multipart(Bytes::from(&body[..60]), "XX".into(), 1 << 20).await.is_err());
        let many: String = (0..70)
            .map(|i| format!("--XX\r\nContent-Disposition: form-data; name=\"f{i}\"\r\n\r\nv\r\n"))
            .chain(std::iter::once("--XX--\r\n".to_string()))
            .collect();
        assert!(Form::multipart(Bytes::from(many), "XX".into(), 1 << 20).await.is_err());
    }
}
