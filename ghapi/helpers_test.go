package ghapi_test

import (
	"encoding/base64"
	"encoding/json"
	"net/http"
)

var b64 = base64.RawURLEncoding

func jsonDecode(resp *http.Response, v any) error { return json.NewDecoder(resp.Body).Decode(v) }
