// AWS Signature Version 4 for the console's DynamoDB requests, with the browser's WebCrypto.
// Signs the headers Haven needs (host, x-amz-date, and for the API content-type and x-amz-target)
// and the body.
// WebCrypto exists only in secure contexts: https, or http on localhost / 127.0.0.1.
"use strict";

const Sigv4 = (() => {
  const encoder = new TextEncoder();
  const hex = (buffer) =>
    Array.from(new Uint8Array(buffer), (b) => b.toString(16).padStart(2, "0")).join("");
  const sha256 = async (text) => hex(await crypto.subtle.digest("SHA-256", encoder.encode(text)));
  const hmac = async (key, text) => {
    const raw = typeof key === "string" ? encoder.encode(key) : key;
    const imported = await crypto.subtle.importKey(
      "raw", raw, { name: "HMAC", hash: "SHA-256" }, false, ["sign"]);
    return crypto.subtle.sign("HMAC", imported, encoder.encode(text));
  };

  // The headers to send with a request, signed with `key` ({id, secret, region}): `headers` (a
  // DynamoDB call's content-type and x-amz-target), `body`, to `path` on `host` with `method`.
  async function sign(key, { host, method = "POST", path = "/", headers: given = {}, body = "" },
    now = new Date()) {
    const amzDate = now.toISOString().replace(/[-:]|\.\d{3}/g, "");
    const date = amzDate.slice(0, 8);
    const headers = { ...given, host, "x-amz-date": amzDate };
    const names = Object.keys(headers).sort();
    const canonical = [
      method, path, "",
      ...names.map((n) => `${n}:${headers[n]}`), "",
      names.join(";"),
      await sha256(body),
    ].join("\n");
    const scope = `${date}/${key.region}/dynamodb/aws4_request`;
    const toSign = ["AWS4-HMAC-SHA256", amzDate, scope, await sha256(canonical)].join("\n");
    let signing = await hmac(`AWS4${key.secret}`, date);
    for (const part of [key.region, "dynamodb", "aws4_request"]) {
      signing = await hmac(signing, part);
    }
    const signature = hex(await hmac(signing, toSign));
    delete headers.host; // the browser sends it
    headers.authorization =
      `AWS4-HMAC-SHA256 Credential=${key.id}/${scope}, SignedHeaders=${names.join(";")}, Signature=${signature}`;
    return headers;
  }

  return { sign };
})();
