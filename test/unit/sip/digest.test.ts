import { describe, expect, test } from "vitest";
import {
  authorizationHeader,
  chooseChallenge,
  digestResponse,
  parseDigestChallenge,
} from "../../../services/probe/src/sip/digest.ts";

describe("digest authentication", () => {
  test("RFC 2617 §3.5 example (MD5, qop=auth)", () => {
    const challenge = parseDigestChallenge(
      'Digest realm="testrealm@host.com", qop="auth,auth-int", nonce="dcd98b7102dd2f0e8b11d0f600bfb0c093", opaque="5ccc069c403ebaf9f0171e9517f40e41"',
    )!;
    expect(challenge).toMatchObject({
      realm: "testrealm@host.com",
      algorithm: "MD5",
      qop: ["auth", "auth-int"],
    });
    const input = {
      username: "Mufasa",
      password: "Circle Of Life",
      challenge,
      method: "GET",
      uri: "/dir/index.html",
      nc: 1,
      cnonce: "0a4f113b",
    };
    expect(digestResponse(input)).toBe("6629fae49393a05397450978507c4ef1");
    const header = authorizationHeader(input);
    expect(header).toContain('response="6629fae49393a05397450978507c4ef1"');
    expect(header).toContain("nc=00000001");
    expect(header).toContain('opaque="5ccc069c403ebaf9f0171e9517f40e41"');
  });

  test("RFC 7616 §3.9.1 example (SHA-256, qop=auth)", () => {
    const challenge = parseDigestChallenge(
      'Digest realm="http-auth@example.org", qop="auth, auth-int", algorithm=SHA-256, nonce="7ypf/xlj9XXwfDPEoM4URrv/xwf94BcCAzFZH4GiTo0v", opaque="FQhe/qaU925kfnzjCev0ciny7QMkPqMAFRtzCUYo5tdS"',
    )!;
    expect(
      digestResponse({
        username: "Mufasa",
        password: "Circle of Life",
        challenge,
        method: "GET",
        uri: "/dir/index.html",
        nc: 1,
        cnonce: "f2/wE4q74E6zIJEtWaHKaf5wv/H5QzzpXusqGemxURZJ",
      }),
    ).toBe("753927fa0e85d155564e2e272a28d1802ca10daf4496794697cf8db5856cb6c1");
  });

  test("RFC 8760: of several challenges the strongest allowed wins; unsupported ones are skipped", () => {
    const md5 = 'Digest realm="r", nonce="n1", qop="auth"';
    const sha = 'Digest realm="r", nonce="n2", qop="auth", algorithm=SHA-256';
    const weird = 'Digest realm="r", nonce="n3", algorithm=SHA-512-256';
    expect(chooseChallenge([md5, sha, weird])?.nonce).toBe("n2");
    expect(chooseChallenge([md5, sha], ["MD5"])?.nonce).toBe("n1");
    expect(chooseChallenge([weird])).toBeUndefined();
    expect(chooseChallenge(['Digest realm="r", nonce="n", qop="auth-int"'])).toBeUndefined();
    expect(parseDigestChallenge("Basic realm=x")).toBeUndefined();
  });
});
