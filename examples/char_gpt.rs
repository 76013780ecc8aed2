//! A character-level GPT on Shakespeare trained with the AdamW recipe (warmup, cosine decay,
//! gradient clipping, an EMA of the weights), exactly as `shared/bench/torch_char_gpt.py`
//! defines model, data, recipe and metric; the program lives in `adamant_lab::char_gpt`.
//!
//! ```text
//! cargo run --release --example char_gpt                       # the reference run, 2,000 steps
//! cargo run --release --example char_gpt -- --seed 1 --json
//! cargo run --release --example char_gpt -- --steps 300 --layers 2 --embd 64 --data datasets/shakespeare-mini
//! cargo run --release --example char_gpt -- --compare recipe   # the recipe taken apart
//! ```

fn main() {
    adamant_lab::char_gpt::main();
}
