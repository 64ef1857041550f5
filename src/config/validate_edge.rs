//! The reverse-proxy keys: hiding upstream fields (`[server] hide_response_headers`,
//! `server_header`), the access log (`[log] access*`), the slow-body floor
//! (`[limits] client_body_rate_*`) and CIDR access lists (`allow` / `deny` of listeners and
//! routes). Every problem names its key.

use std::path::Path;
use std::time::Duration;

use super::defaults as d;
use super::file::{AccessFormatFile, LimitsFile, LogFile, ServerFile, UpstreamFile};
use super::UpstreamServer;
use super::{relative_to, ConfigError};
use crate::access_log::{Field, Format, Target};
use crate::gateway::access::IpRules;
use crate::gateway::transform::valid_field_name;
use crate::relay::MinRate;
use crate::upstream::tls::UpstreamTls;

/// (lower-case names to hide, the `Server` value to send).
pub(super) fn hiding(
    f: &ServerFile,
    errs: &mut Vec<ConfigError>,
) -> (Vec<Box<[u8]>>, Option<String>) {
    let mut hide = Vec::new();
    for (i, n) in f.hide_response_headers.iter().enumerate() {
        if valid_field_name(n) {
            hide.push(n.to_ascii_lowercase().into_bytes().into_boxed_slice());
        } else {
            errs.push(ConfigError::new(
                format!("server.hide_response_headers[{i}]"),
                format!("\"{n}\" is not a field name"),
            ));
        }
    }
    let v = &f.server_header;
    if !v
        .bytes()
        .all(|b| b == b' ' || b == b'\t' || (0x21..0x7f).contains(&b))
    {
        errs.push(ConfigError::new(
            "server.server_header",
            "must be printable ASCII",
        ));
    }
    let server = (!v.trim().is_empty()).then(|| v.trim().to_string());
    (hide, server)
}

pub(super) fn access_log(
    f: &LogFile,
    path: &Path,
    errs: &mut Vec<ConfigError>,
) -> (Option<Target>, Format, Vec<Field>) {
    let target = match f.access.as_str() {
        "off" => None,
        "stdout" => Some(Target::Stdout),
        "" => {
            errs.push(ConfigError::new(
                "log.access",
                "is empty: use \"off\", \"stdout\" or a file path",
            ));
            None
        }
        p => {
            let file = relative_to(path, p);
            let dir = file.parent().filter(|d| !d.as_os_str().is_empty());
            if dir.is_some_and(|d| !d.is_dir()) || file.is_dir() {
                errs.push(ConfigError::new(
                    "log.access",
                    format!(
                        "{}: no such directory, or a directory itself",
                        file.display()
                    ),
                ));
            }
            Some(Target::File(file))
        }
    };
    let format = match f.access_format {
        AccessFormatFile::Combined => Format::Combined,
        AccessFormatFile::Json => Format::Json,
    };
    let mut fields = Vec::new();
    for (i, name) in f.access_fields.iter().enumerate() {
        match Field::parse(name) {
            Some(field) if !fields.contains(&field) => fields.push(field),
            Some(_) => errs.push(ConfigError::new(
                format!("log.access_fields[{i}]"),
                format!("\"{name}\" is listed twice"),
            )),
            None => errs.push(ConfigError::new(
                format!("log.access_fields[{i}]"),
                format!("\"{name}\" is not one of {}", d::ACCESS_FIELDS.join(", ")),
            )),
        }
    }
    (target, format, fields)
}

pub(super) fn body_rate(f: &LimitsFile, errs: &mut Vec<ConfigError>) -> Option<MinRate> {
    super::validate::check_ms(
        "limits.client_body_rate_window_ms",
        f.client_body_rate_window_ms,
        100,
        d::TIMEOUT_MS_MAX,
        errs,
    );
    if f.client_body_rate_min_bytes_per_s > 1 << 40 {
        errs.push(ConfigError::new(
            "limits.client_body_rate_min_bytes_per_s",
            format!("{} is more than 2^40", f.client_body_rate_min_bytes_per_s),
        ));
        return None;
    }
    (f.client_body_rate_min_bytes_per_s > 0).then(|| MinRate {
        bytes_per_s: f.client_body_rate_min_bytes_per_s,
        window: Duration::from_millis(f.client_body_rate_window_ms.max(1)),
    })
}

/// `allow` / `deny` of a listener or route (`at` = `listener[0]`, `route[3]`).
pub(super) fn ip_rules(
    allow: &[String],
    deny: &[String],
    at: &str,
    errs: &mut Vec<ConfigError>,
) -> IpRules {
    for (k, list) in [("allow", allow), ("deny", deny)] {
        if let Err(e) = IpRules::parse(list, &[]) {
            errs.push(ConfigError::new(format!("{at}.{k}"), e));
        }
    }
    IpRules::parse(allow, deny).unwrap_or_default()
}

/// `[upstream.tls]` of upstream `i`, loaded now (so that a bad CA file fails `coregate check`);
/// each server's host must make a TLS server name unless `server_name` is given. Servers found
/// later by discovery are checked when connected to.
pub(super) fn upstream_tls(
    u: &UpstreamFile,
    i: usize,
    path: &Path,
    servers: &[UpstreamServer],
    errs: &mut Vec<ConfigError>,
) -> Option<UpstreamTls> {
    let t = u.tls.as_ref()?;
    let ca = t.ca.as_deref().map(|c| relative_to(path, c));
    let tls = UpstreamTls::load(ca.as_deref(), t.server_name.as_deref(), t.verify)
        .map_err(|(k, e)| errs.push(ConfigError::new(format!("upstream[{i}].tls.{k}"), e)))
        .ok()?;
    for (j, s) in servers.iter().enumerate() {
        if tls.name_for(&s.address).is_none() {
            errs.push(ConfigError::new(
                format!("upstream[{i}].server[{j}].address"),
                "its host is not a valid TLS server name: set `tls.server_name`",
            ));
        }
    }
    Some(tls)
}
