package ghapi

// SignJWTClaims lets the tests sign JWTs with claims of their choosing
// (expired, too long-lived, another App's).
var SignJWTClaims = signJWTClaims
