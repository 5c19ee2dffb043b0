// ssm data prepare INPUT... --out DIR   |   ssm data inspect SHARD
#include <cstdio>

#include "data/corpus.h"
#include "data/dataset.h"
#include "tools/commands.h"

namespace ssm::tools {

void register_data(CLI::App& app) {
  auto* data = app.add_subcommand("data", "Prepare and inspect token datasets");
  data->require_subcommand(1);

  auto* prep = data->add_subcommand("prepare", "Tokenize text files into token shards + dataset.json");
  auto opt = std::make_shared<data::CorpusOptions>();
  auto tok = std::make_shared<std::string>("byte");
  auto split = std::make_shared<std::string>("blank");
  prep->add_option("inputs", opt->inputs, "Text files or directories (files taken in name order)")->required();
  prep->add_option("--out", opt->out_dir, "Output dataset directory")->required();
  prep->add_option("--tokenizer", *tok, "byte | bpe")->check(CLI::IsMember({"byte", "bpe"}));
  prep->add_option("--vocab", opt->bpe_vocab_size, "BPE vocabulary size (with the 259 byte/special ids)");
  prep->add_option("--val-fraction", opt->val_fraction, "Share of documents held out for validation");
  prep->add_option("--shard-tokens", opt->shard_tokens, "Maximum tokens per shard file");
  prep->add_option("--split", *split, "Documents are: blank (blank-line separated paragraphs) | file")
      ->check(CLI::IsMember({"blank", "file"}));
  prep->callback([=] {
    opt->tokenizer = data::parse_tokenizer_kind(*tok);
    opt->split = *split == "file" ? data::DocumentSplit::kWholeFile : data::DocumentSplit::kBlankLine;
    data::DatasetIndex idx = data::prepare_corpus(*opt);
    std::fprintf(stderr, "prepared %s: %s tokenizer, vocab %lld, %lld train / %lld validation tokens in %zu + %zu shards\n",
                 opt->out_dir.c_str(), idx.tokenizer_kind.c_str(), static_cast<long long>(idx.vocab_size),
                 static_cast<long long>(idx.train_tokens()), static_cast<long long>(idx.val_tokens()),
                 idx.train.size(), idx.val.size());
  });

  auto* insp = data->add_subcommand("inspect", "Print a shard's header, checksum status and first tokens");
  auto shard = std::make_shared<std::string>();
  auto tokfile = std::make_shared<std::string>();
  auto count = std::make_shared<int64_t>(32);
  insp->add_option("shard", *shard, "Shard file (.bin)")->required();
  insp->add_option("--tokenizer", *tokfile, "tokenizer.json to decode with (default: beside the shard, if any)");
  insp->add_option("-n,--tokens", *count, "How many tokens to show");
  insp->callback([=] {
    std::string tf = *tokfile;
    if (tf.empty()) {
      std::string dir = shard->substr(0, shard->find_last_of('/') == std::string::npos ? 0 : shard->find_last_of('/'));
      std::string guess = (dir.empty() ? std::string(".") : dir) + "/tokenizer.json";
      if (FILE* f = std::fopen(guess.c_str(), "r")) {
        std::fclose(f);
        tf = guess;
      }
    }
    data::Tokenizer t = tf.empty() ? data::Tokenizer::byte_level() : data::Tokenizer::load(tf);
    std::printf("%s", data::inspect_shard(*shard, &t, *count).c_str());
  });
}

}  // namespace ssm::tools
