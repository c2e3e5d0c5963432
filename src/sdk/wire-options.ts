import type * as z from "zod";

/**
 * The SDK's option types, derived from the wire schemas instead of copied: an option is a
 * schema field (z.input, so a field with a default is optional) under its camelCase name,
 * the inverse of the `snake()` the SDK applies before a call. A field renamed, retyped or
 * removed in src/contract/ changes the SDK's types with it, and a name picked here that the
 * schema lacks fails to compile.
 */

/** `max_output_bytes` → `maxOutputBytes`. */
export type CamelCase<S extends string> = S extends `${infer Head}_${infer Tail}`
  ? `${Head}${Capitalize<CamelCase<Tail>>}`
  : S;

/** An object's keys in camelCase, each keeping its type and optionality. */
export type CamelKeys<T> = { [K in keyof T as CamelCase<K & string>]: T[K] };

/** The fields `K` of a wire input, as SDK options. */
export type WireOptions<S extends z.ZodObject, K extends keyof z.input<S>> = CamelKeys<Pick<z.input<S>, K>>;
