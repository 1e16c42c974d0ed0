/**
 * The local app's response head parser (src/agent/origin-head.ts) on its own: the status line
 * rules one by one (each input is refused by exactly one check, so dropping that check lets it
 * through), exact status arithmetic, the framing fields it gathers, and the error's name. Pure:
 * text in, fields or OriginProtocolError out (issue 18: the parser's own mutation survivors).
 */
import { describe, expect, test } from "bun:test";
import { hasConnectionOption, OriginProtocolError, parseResponseHead } from "../src/agent/origin-head.ts";

const refused = (text: string): string => {
  try {
    parseResponseHead(text);
  } catch (e) {
    expect(e).toBeInstanceOf(OriginProtocolError);
    return (e as Error).message;
  }
  throw new Error(`accepted: ${JSON.stringify(text)}`);
};

describe("status line: each rule on its own", () => {
  const notHttp = (line: string) => `the local app did not answer with HTTP/1.x (${JSON.stringify(line)})`;
  const cases: Array<[string, string]> = [
    ["HTTP/1.1 20", "too short: two digits and nothing after"],
    ["XTTP/1.1 200 OK", "not the HTTP/1. prefix (upper-case)"],
    ["http/1.1 200 OK", "not the HTTP/1. prefix (lower-case)"],
    ["HTTP/1.1x200 OK", "no space after the version"],
    ["HTTP/1.2 200 OK", "minor version 2"],
    ["HTTP/1.1 2x0 OK", "a letter among the digits"],
    ["HTTP/1.1 2/0 OK", "a character just below '0'"],
    ["HTTP/1.1 2:0 OK", "a character just above '9'"],
    ["HTTP/1.1 200\tOK", "no space after the status"],
    ["HTTP/1.1 200 O\rK", "a CR inside the reason phrase"],
  ];
  for (const [line, why] of cases) {
    test(`${JSON.stringify(line)} is refused (${why})`, () => {
      expect(refused(`${line}\r\n\r\n`)).toBe(notHttp(line));
    });
  }

  test("every status from 100 to 999 is read digit by digit, with or without a reason", () => {
    for (const s of [100, 101, 204, 299, 304, 418, 451, 500, 599, 999]) {
      expect(parseResponseHead(`HTTP/1.1 ${s} Whatever\r\n\r\n`).status).toBe(s);
      expect(parseResponseHead(`HTTP/1.0 ${s}\r\n\r\n`)).toMatchObject({ status: s, minor: 0 });
    }
  });

  test("a head without any line break is the status line alone", () => {
    expect(parseResponseHead("HTTP/1.1 302 Found")).toEqual({ status: 302, minor: 1, headers: [], connection: "", teList: "", clList: null, keepAliveMs: null });
  });
});

describe("header lines", () => {
  test("the last line may end without a line break", () => {
    expect(parseResponseHead("HTTP/1.1 200 OK\r\nX-A: b").headers).toEqual([["x-a", "b"]]);
  });

  test("no framing header: the gathered fields are empty", () => {
    const h = parseResponseHead("HTTP/1.1 200 OK\r\nX-Powered-By: test\r\n\r\n");
    expect([h.connection, h.teList, h.clList, h.keepAliveMs]).toEqual(["", "", null, null]);
  });

  test("framing fields are gathered lower-cased, repeats joined; Keep-Alive only from its own header", () => {
    const h = parseResponseHead(
      "HTTP/1.1 200 OK\r\nConnection: Keep-Alive\r\nCONNECTION: Upgrade\r\nTransfer-Encoding: GZIP\r\nTransfer-Encoding: chunked\r\nContent-Length: 5\r\nX-Powered-By: timeout=9\r\nX-Timeout-Hint: timeout=8\r\nKeep-Alive: timeout=3, max=10\r\n\r\n",
    );
    expect(h.connection).toBe(",keep-alive,upgrade");
    expect(h.teList).toBe(",gzip,chunked");
    expect(h.clList).toEqual(["5"]);
    expect(h.keepAliveMs).toBe(3000);
    // a header of the framing names' lengths with a timeout in it is not Keep-Alive
    expect(parseResponseHead("HTTP/1.1 200 OK\r\nX-Powered-By: timeout=9\r\n\r\n").keepAliveMs).toBeNull();
  });

  test("the error is an OriginProtocolError by name too (logs and the inspector show it)", () => {
    try {
      parseResponseHead("nonsense\r\n\r\n");
      throw new Error("accepted");
    } catch (e) {
      expect((e as Error).name).toBe("OriginProtocolError");
    }
  });
});

describe("Connection options", () => {
  test("whole comma-separated tokens, spaces trimmed", () => {
    expect(hasConnectionOption(",keep-alive", "keep-alive")).toBe(true);
    expect(hasConnectionOption(", foo ,  close ", "close")).toBe(true);
    expect(hasConnectionOption(",x-keep-alive-y", "keep-alive")).toBe(false);
    expect(hasConnectionOption(",close-later", "close")).toBe(false);
    expect(hasConnectionOption("", "close")).toBe(false);
  });
});
