export * from "./tensor/index.js";
