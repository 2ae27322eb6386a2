export { closest, describe, OptionError, readOptions, snakeCase, type OptionHint } from "./strict.js";
