//! PostgreSQL errors for people: the server's message with its detail and
//! hint, or a transport error with its causes.

/// One line: `message: detail (hint: ...)`, or the error and its sources.
pub fn message(e: &tokio_postgres::Error) -> String {
    match e.as_db_error() {
        Some(d) => {
            let mut m = d.message().to_string();
            if let Some(detail) = d.detail() {
                m.push_str(": ");
                m.push_str(detail);
            }
            if let Some(h) = d.hint() {
                m.push_str(" (hint: ");
                m.push_str(h);
                m.push(')');
            }
            m
        }
        None => {
            // Transport errors keep their cause a level down (TLS, I/O).
            let mut m = e.to_string();
            let mut src = std::error::Error::source(e);
            while let Some(s) = src {
                m.push_str(": ");
                m.push_str(&s.to_string());
                src = s.source();
            }
            m
        }
    }
}
