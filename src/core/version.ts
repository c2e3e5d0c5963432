/** Kept in step with package.json by the contract test. */
export const VERSION = "0.1.0";
