// Diffusion processes: schedules (plain data), the forward process q(x_t | x_0), and samplers.
export * from "./schedules.ts";
export * from "./noising.ts";
export * from "./samplers.ts";
export * from "./sample.ts";
