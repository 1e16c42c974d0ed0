/**
 * The gateway settings added for running on Azure: role-propagation window and the orphan
 * reconciler's interval and grace — defaults, 0, and a clear error for a bad value.
 */
import { expect, test } from "bun:test";
import { ConfigError, GATEWAY_SETTING_NAMES, resolveGatewayConfig } from "../src/config.ts";

test("defaults: 600 s propagation window, reconcile every 300 s with a 600 s grace", () => {
  const c = resolveGatewayConfig({}, {});
  expect(c.rolePropagationSeconds).toBe(600);
  expect(c.reconcileIntervalSeconds).toBe(300);
  expect(c.reconcileGraceSeconds).toBe(600);
  for (const n of ["AZHEXGATE_ROLE_PROPAGATION_SECONDS", "AZHEXGATE_RECONCILE_INTERVAL_SECONDS", "AZHEXGATE_RECONCILE_GRACE_SECONDS"]) {
    expect(GATEWAY_SETTING_NAMES as readonly string[]).toContain(n);
  }
});

test("set from the environment; 0 switches the window / the reconciler off; bad values name the setting", () => {
  const c = resolveGatewayConfig({}, { AZHEXGATE_ROLE_PROPAGATION_SECONDS: "0", AZHEXGATE_RECONCILE_INTERVAL_SECONDS: "0", AZHEXGATE_RECONCILE_GRACE_SECONDS: "1800" });
  expect([c.rolePropagationSeconds, c.reconcileIntervalSeconds, c.reconcileGraceSeconds]).toEqual([0, 0, 1800]);
  for (const [name, value] of [
    ["AZHEXGATE_ROLE_PROPAGATION_SECONDS", "-1"],
    ["AZHEXGATE_RECONCILE_INTERVAL_SECONDS", "soon"],
    ["AZHEXGATE_RECONCILE_GRACE_SECONDS", " "],
  ] as const) {
    const err = (() => {
      try {
        resolveGatewayConfig({}, { [name]: value });
      } catch (e) {
        return e;
      }
    })();
    expect(err).toBeInstanceOf(ConfigError);
    expect((err as Error).message).toBe(`${name} must be a number of seconds, 0 or more (got "${value}")`);
  }
});

test("AZHEXGATE_TRUST_FORWARDED_HOST: off unless true / 1; anything else is an error", () => {
  expect(resolveGatewayConfig({}, {}).trustForwardedHost).toBe(false);
  expect(resolveGatewayConfig({}, { AZHEXGATE_TRUST_FORWARDED_HOST: "true" }).trustForwardedHost).toBe(true);
  expect(resolveGatewayConfig({}, { AZHEXGATE_TRUST_FORWARDED_HOST: "1" }).trustForwardedHost).toBe(true);
  expect(resolveGatewayConfig({}, { AZHEXGATE_TRUST_FORWARDED_HOST: "FALSE" }).trustForwardedHost).toBe(false);
  expect(() => resolveGatewayConfig({}, { AZHEXGATE_TRUST_FORWARDED_HOST: "yes please" })).toThrow('AZHEXGATE_TRUST_FORWARDED_HOST must be true or false (got "yes please")');
});
