export { closest, describe, exactKeys, OptionError, readOptions, snakeCase, type OptionHint } from "./strict.js";
