// The `tiny-diffusion` command line: train, sample, devices, and quickstart (npm start).
import { Command, CommanderError, InvalidArgumentError, Option } from "commander";
import { UserError, parseNonNegativeInt, parseNumber, parsePositiveInt } from "./errors.ts";
import { listDevices, useBackend, type BackendChoice } from "./backend.ts";

function intArg(name: string, positive = true) {
  return (value: string) => {
    try {
      return positive ? parsePositiveInt(name, value) : parseNonNegativeInt(name, value);
    } catch (e) {
      throw new InvalidArgumentError((e as Error).message);
    }
  };
}

function digitArg(value: string): number | "all" {
  if (value === "all") return "all";
  if (!/^[0-9]$/.test(value)) throw new InvalidArgumentError(`--digit must be 0-9 or 'all', got '${value}'`);
  return Number(value);
}

function batchArg(value: string): number | "full" {
  if (value === "full") return "full";
  return intArg("--batch")(value);
}

function numberArg(name: string, check: (n: number) => boolean, what: string) {
  return (value: string) => {
    try {
      return parseNumber(name, value, check, what);
    } catch (e) {
      throw new InvalidArgumentError((e as Error).message);
    }
  };
}

const backendOption = () =>
  new Option("--backend <name>", "compute backend (auto: wasm, else cpu; webgpu: the GPU, see `devices`)").choices(["auto", "cpu", "wasm", "webgpu"]).default("auto");

export function buildProgram(log: (line: string) => void = (l) => console.log(l)): Command {
  const program = new Command("tiny-diffusion")
    .description("Train and sample diffusion models on 8x8 digits, in TypeScript")
    .showHelpAfterError("(run with --help for usage)")
    .exitOverride();

  program
    .command("train")
    .description("train a U-Net diffusion model; writes checkpoints and pictures to --out")
    .addOption(new Option("--preset <name>", "hyper-parameter preset").choices(["quick", "tutorial"]).default("quick"))
    .option("--digit <d>", "digit to learn (0-9) or 'all'", digitArg)
    .option("--features <F>", "U-Net base width (tutorial: 64)", intArg("--features"))
    .option("--steps <N>", "training steps (the LR schedule is stretched to match)", intArg("--steps"))
    .option("--batch <B>", "images per step, or 'full' (the whole training set, as the tutorial)", batchArg)
    .option("--seed <S>", "random seed", intArg("--seed", false))
    .option("--diffusion-steps <T>", "length T of the noise schedule (tutorial: 1000)", intArg("--diffusion-steps"))
    .option("--penalty <W>", "gradient-penalty weight (tutorial: 0.02; 0 = off)", numberArg("--penalty", (n) => n >= 0, "a number >= 0"))
    .option("--conditional", "learn all ten digits with class labels (for guidance); needs --digit all")
    .option("--checkpoint-every <N>", "steps between checkpoints", intArg("--checkpoint-every"))
    .addOption(backendOption())
    .option("--out <dir>", "run folder", "runs/train")
    .option("--resume", "continue the run in --out exactly where its checkpoint stopped", false)
    .option("--no-pictures", "skip writing the pictures at the end")
    .option("--no-progress", "no progress bar")
    .action(async (opts) => {
      const backend = await useBackend(opts.backend as BackendChoice);
      const { runTraining } = await import("./train-command.ts");
      const { writeRunPictures } = await import("./pictures.ts");
      const { run } = await runTraining({ ...opts, log });
      if (opts.pictures) {
        const written = await writeRunPictures(opts.out, run, { log });
        log(`pictures: ${written.join(", ")}`);
      }
      backend.dispose?.();
    });

  program
    .command("sample")
    .description("generate images from a checkpoint")
    .requiredOption("--checkpoint <dir>", "run folder or checkpoint folder")
    .option("--n <N>", "number of images", intArg("--n"), 16)
    .requiredOption("--out <file.npy>", "output .npy file: float32 [N,8,8], pixel/16 units clipped to [0,1]")
    .option("--png <file.png>", "also write a grid picture")
    .option("--seed <S>", "random seed", intArg("--seed", false), 0)
    .option("--steps <K>", "sampler steps (default: all T steps for ddpm, 50 for ddim)", intArg("--steps"))
    .addOption(new Option("--sampler <kind>", "reverse process").choices(["ddpm", "ddim"]).default("ddpm"))
    .option("--class <d>", "digit to generate with a conditional model: 0-9, or 'all' (cycles 0-9 and writes FILE.labels.npy)", (value: string) => {
      if (value === "all") return "all";
      if (!/^[0-9]$/.test(value)) throw new InvalidArgumentError(`--class must be 0-9 or 'all', got '${value}'`);
      return Number(value);
    })
    .option("--guidance <w>", "classifier-free guidance scale (conditional models)", numberArg("--guidance", (n) => n >= 0, "a number >= 0"))
    .option("--raw-weights", "sample with the raw weights even when the checkpoint has EMA weights")
    .option("--tutorial-sampler-schedule", "reproduce the tutorial's mismatch: sample with linspace(1e-4, 0.02, 1000) instead of the model's own schedule")
    .option("--no-clip", "do not clip the predicted clean image to [0, 1] at each step (clipping is the default, as diffusers' clip_sample)")
    .addOption(backendOption())
    .action(async (opts) => {
      const backend = await useBackend(opts.backend as BackendChoice);
      const { runSample } = await import("./sample-command.ts");
      await runSample({ ...opts, log });
      backend.dispose?.();
    });

  program
    .command("eval")
    .description("score generated images (a .npy from sample) with a digit classifier: accuracy, FID, copy check")
    .argument("<samples.npy>", "float32 [N,8,8] (or [N,64], [N,8,8,1]) in [0,1], as sample writes")
    .option("--class <d>", "the digit every sample should be (0-9)", (value: string) => {
      if (!/^[0-9]$/.test(value)) throw new InvalidArgumentError(`--class must be a digit 0-9, got '${value}'`);
      return Number(value);
    })
    .option("--labels <file.npy>", "one expected digit per sample: int32 (or integer float) [N]")
    .addOption(new Option("--reference <set>", "real images to compare with").choices(["test", "train"]).default("test"))
    .option("--train-split <d>", "the split the model was trained on, 0-9 or 'all' (default: --class, else all)", (value: string) => {
      if (value === "all") return "all";
      if (!/^[0-9]$/.test(value)) throw new InvalidArgumentError(`--train-split must be 0-9 or 'all', got '${value}'`);
      return Number(value);
    })
    .option("--json", "print the report as one JSON line")
    .addOption(backendOption())
    .action(async (samples: string, opts) => {
      const backend = await useBackend(opts.backend as BackendChoice);
      try {
        const { runEval } = await import("./eval-command.ts");
        await runEval({ samples, ...opts, log });
      } finally {
        backend.dispose?.();
      }
    });

  program
    .command("devices")
    .description("list the compute backends and devices available here")
    .action(async () => {
      for (const line of await listDevices()) log(line);
    });

  program
    .command("quickstart")
    .description("train the quick preset, sample, and write every picture into a new run folder (npm start)")
    .addOption(backendOption())
    .option("--out <dir>", "run folder (default: runs/quick-<time>)")
    .action(async (opts) => {
      const backend = await useBackend(opts.backend as BackendChoice);
      const { runTraining } = await import("./train-command.ts");
      const { writeRunPictures } = await import("./pictures.ts");
      const out = opts.out ?? `runs/quick-${new Date().toISOString().replace(/[:.]/g, "-").slice(0, 19)}`;
      const { run } = await runTraining({ preset: "quick", out, resume: false, progress: true, log });
      const written = await writeRunPictures(out, run, { log });
      log(`done: pictures and checkpoint in ${out}`);
      for (const file of written) log(`  ${file}`);
      backend.dispose?.();
    });
  return program;
}

export async function main(argv: string[]): Promise<number> {
  const program = buildProgram();
  try {
    await program.parseAsync(argv, { from: "user" });
    return 0;
  } catch (e) {
    if (e instanceof CommanderError) return e.exitCode === 0 ? 0 : 2;
    if (e instanceof UserError) {
      console.error(`tiny-diffusion: ${e.message}`);
      return 1;
    }
    const message = e instanceof Error ? e.message : String(e);
    console.error(`tiny-diffusion: ${message.split("\n")[0]}`);
    if (process.env.TINY_DIFFUSION_DEBUG) console.error(e);
    return 1;
  }
}

if (process.argv[1] && /tiny-diffusion(\.mjs)?$|main\.ts$/.test(process.argv[1])) {
  const code = await main(process.argv.slice(2));
  process.exit(code);
}
