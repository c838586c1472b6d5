//! Authentication of Socket.IO connections: `jwt` (an HS256 token in the CONNECT payload) or `trust`
//! (the `userid` a client names is believed; development and the demo only).
//!
//! Only HS256 is accepted, whatever the token's header claims, so a token signed with another
//! algorithm (or `none`) is refused: no algorithm confusion. `exp` is required and enforced.

use jsonwebtoken::{Algorithm, DecodingKey, Validation};
use serde::Deserialize;
use serde_json::Value;

/// How users prove who they are.
#[derive(Clone)]
pub enum AuthMode {
    Trust,
    Jwt(Box<JwtVerifier>),
}

impl AuthMode {
    pub fn name(&self) -> &'static str {
        match self {
            AuthMode::Trust => "trust",
            AuthMode::Jwt(_) => "jwt",
        }
    }
}

/// Why a token was refused; the text goes to the client in CONNECT_ERROR.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AuthError {
    MissingToken,
    Expired,
    /// Bad signature, wrong algorithm, malformed, or missing `exp`.
    InvalidToken,
    /// `sub` is not a user id.
    BadSubject,
}

impl AuthError {
    pub fn message(&self) -> &'static str {
        match self {
            AuthError::MissingToken => "Authentication required: pass { auth: { token } }",
            AuthError::Expired => "Authentication failed: token expired",
            AuthError::InvalidToken => "Authentication failed: invalid token",
            AuthError::BadSubject => "Authentication failed: token subject is not a user id",
        }
    }
}

impl std::fmt::Display for AuthError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.message())
    }
}

impl std::error::Error for AuthError {}

#[derive(Deserialize)]
struct Claims {
    sub: Value,
}

#[derive(Clone)]
pub struct JwtVerifier {
    key: DecodingKey,
    validation: Validation,
}

impl std::fmt::Debug for JwtVerifier {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Never print the key.
        f.write_str("JwtVerifier(HS256)")
    }
}

impl JwtVerifier {
    pub fn new(secret: &[u8]) -> JwtVerifier {
        let mut validation = Validation::new(Algorithm::HS256);
        // `sub` is checked below: jsonwebtoken only accepts string subjects, ids may be numbers.
        validation.set_required_spec_claims(&["exp"]);
        validation.validate_exp = true;
        // Tolerates small clock differences between the host application and the gateway.
        validation.leeway = 10;
        JwtVerifier {
            key: DecodingKey::from_secret(secret),
            validation,
        }
    }

    /// The user id the token vouches for.
    pub fn verify(&self, token: &str) -> Result<i32, AuthError> {
        let data = jsonwebtoken::decode::<Claims>(token, &self.key, &self.validation).map_err(
            |e| match e.kind() {
                jsonwebtoken::errors::ErrorKind::ExpiredSignature => AuthError::Expired,
                _ => AuthError::InvalidToken,
            },
        )?;
        let id = match &data.claims.sub {
            Value::Number(n) => n.as_i64(),
            Value::String(s) if !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit()) => {
                s.parse().ok()
            }
            _ => None,
        };
        id.and_then(|id| i32::try_from(id).ok())
            .ok_or(AuthError::BadSubject)
    }

    /// Finds the token in a CONNECT payload (`{ token }`) and verifies it.
    pub fn verify_auth(
        &self,
        auth: Option<&serde_json::value::RawValue>,
    ) -> Result<i32, AuthError> {
        let value: Value = auth
            .and_then(|raw| serde_json::from_str(raw.get()).ok())
            .unwrap_or(Value::Null);
        let token = value
            .get("token")
            .and_then(Value::as_str)
            .ok_or(AuthError::MissingToken)?;
        self.verify(token)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use jsonwebtoken::{encode, EncodingKey, Header};
    use serde_json::json;

    fn now() -> i64 {
        chrono::Utc::now().timestamp()
    }

    fn token(alg: Algorithm, secret: &[u8], claims: Value) -> String {
        encode(
            &Header::new(alg),
            &claims,
            &EncodingKey::from_secret(secret),
        )
        .unwrap()
    }

    #[test]
    fn accepts_numeric_and_digit_string_subjects() {
        let v = JwtVerifier::new(b"s3cret");
        let t = token(
            Algorithm::HS256,
            b"s3cret",
            json!({"sub": 456, "exp": now() + 60}),
        );
        assert_eq!(v.verify(&t), Ok(456));
        let t = token(
            Algorithm::HS256,
            b"s3cret",
            json!({"sub": "457", "exp": now() + 60}),
        );
        assert_eq!(v.verify(&t), Ok(457));
    }

    #[test]
    fn refuses_bad_tokens() {
        let v = JwtVerifier::new(b"s3cret");
        let wrong_key = token(
            Algorithm::HS256,
            b"other",
            json!({"sub": 1, "exp": now() + 60}),
        );
        assert_eq!(v.verify(&wrong_key), Err(AuthError::InvalidToken));
        let expired = token(
            Algorithm::HS256,
            b"s3cret",
            json!({"sub": 1, "exp": now() - 120}),
        );
        assert_eq!(v.verify(&expired), Err(AuthError::Expired));
        let no_exp = token(Algorithm::HS256, b"s3cret", json!({"sub": 1}));
        assert_eq!(v.verify(&no_exp), Err(AuthError::InvalidToken));
        let hs512 = token(
            Algorithm::HS512,
            b"s3cret",
            json!({"sub": 1, "exp": now() + 60}),
        );
        assert_eq!(
            v.verify(&hs512),
            Err(AuthError::InvalidToken),
            "algorithm pinned to HS256"
        );
        let bad_sub = token(
            Algorithm::HS256,
            b"s3cret",
            json!({"sub": "abc", "exp": now() + 60}),
        );
        assert_eq!(v.verify(&bad_sub), Err(AuthError::BadSubject));
        let big_sub = token(
            Algorithm::HS256,
            b"s3cret",
            json!({"sub": 1i64 << 40, "exp": now() + 60}),
        );
        assert_eq!(v.verify(&big_sub), Err(AuthError::BadSubject));
        assert_eq!(v.verify("not.a.token"), Err(AuthError::InvalidToken));
        // alg "none": header {"alg":"none"}, no signature.
        let none = "eyJhbGciOiJub25lIn0.eyJzdWIiOjEsImV4cCI6OTk5OTk5OTk5OX0.";
        assert_eq!(v.verify(none), Err(AuthError::InvalidToken));
        assert_eq!(v.verify_auth(None), Err(AuthError::MissingToken));
    }
}
