//! A VU's cookie jar: what servers set with Set-Cookie is sent back where
//! RFC 6265 says (domain, path, expiry, Secure), by the `cookie_store` crate.
//!
//! An empty jar costs a request nothing: no URL is parsed and no header
//! built until a server (or `cookies = { .. }`) has put something in it.

use cookie_store::{CookieStore, RawCookie};
use http::HeaderValue;
use url::Url;

#[derive(Default)]
pub struct Jar {
    store: CookieStore,
    /// Something was stored since the jar was last cleared.
    used: bool,
}

impl Jar {
    pub fn is_empty(&self) -> bool {
        !self.used
    }

    pub fn clear(&mut self) {
        if self.used {
            self.store.clear();
            self.used = false;
        }
    }

    /// Store the Set-Cookie headers of a response from `url`.
    pub fn store<'a>(&mut self, set_cookies: impl Iterator<Item = &'a HeaderValue>, url: &Url) {
        for v in set_cookies {
            let Ok(text) = v.to_str() else { continue };
            if let Ok(c) = RawCookie::parse(text.to_string()) {
                self.used |= self.store.insert_raw(&c, url).is_ok();
            }
        }
    }

    /// A cookie the plan sets (`cookies = { name = "value" }`), for the
    /// whole site of `url`.
    pub fn set(&mut self, name: &str, value: &str, url: &Url) {
        let c = RawCookie::build((name.to_string(), value.to_string()))
            .path("/")
            .build();
        self.used |= self.store.insert_raw(&c, url).is_ok();
    }

    /// The Cookie header for a request to `url` into `out`: false when no
    /// cookie matches.
    pub fn header(&self, url: &Url, out: &mut String) -> bool {
        out.clear();
        for (name, value) in self.store.get_request_values(url) {
            if !out.is_empty() {
                out.push_str("; ");
            }
            out.push_str(name);
            out.push('=');
            out.push_str(value);
        }
        !out.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn url(s: &str) -> Url {
        Url::parse(s).unwrap()
    }

    #[test]
    fn follows_domain_path_expiry_and_secure() {
        let mut jar = Jar::default();
        assert!(jar.is_empty());
        let set = [
            HeaderValue::from_static("sid=1; Path=/"),
            HeaderValue::from_static("cart=2; Path=/shop"),
            HeaderValue::from_static("gone=3; Max-Age=0"),
            HeaderValue::from_static("sec=4; Secure"),
        ];
        jar.store(set.iter(), &url("http://shop.example.test:8080/login"));
        assert!(!jar.is_empty());
        let mut h = String::new();
        assert!(jar.header(&url("http://shop.example.test:8080/api"), &mut h));
        assert_eq!(h, "sid=1");
        assert!(jar.header(&url("http://shop.example.test:8080/shop/cart"), &mut h));
        let mut got: Vec<&str> = h.split("; ").collect();
        got.sort();
        assert_eq!(got, ["cart=2", "sid=1"]);
        // Host-only: another host gets nothing.
        assert!(!jar.header(&url("http://other.example.test:8080/api"), &mut h));
        // Secure cookies go over https only (loopback counts as secure, as
        // browsers treat it: these are other hosts).
        jar.store(
            [HeaderValue::from_static("tls=5; Secure")].iter(),
            &url("https://shop.example.test/"),
        );
        assert!(jar.header(&url("https://shop.example.test/"), &mut h));
        assert!(h.contains("tls=5"), "{h}");
        assert!(jar.header(&url("http://shop.example.test/"), &mut h));
        assert!(!h.contains("tls=5"), "{h}");
        jar.clear();
        assert!(jar.is_empty());
        assert!(!jar.header(&url("http://shop.example.test:8080/api"), &mut h));
    }
}
