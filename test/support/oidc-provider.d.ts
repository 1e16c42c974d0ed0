// oidc-provider ships no types; the fixture uses it through `any`-typed configuration.
declare module "oidc-provider" {
  // biome-ignore lint/suspicious/noExplicitAny: untyped test dependency
  const Provider: any;
  // biome-ignore lint/suspicious/noExplicitAny: untyped test dependency
  type Provider = any;
  export default Provider;
}
