#include "completion.h"

#include <stdexcept>
#include <vector>

namespace spt::client {

namespace {

// "--a --b" of an app's long options (help and version included).
std::string long_options(const CLI::App& app) {
  std::string out;
  for (const CLI::Option* o : app.get_options([](const CLI::Option*) { return true; }))
    for (const auto& n : o->get_lnames()) out += (out.empty() ? "--" : " --") + n;
  return out;
}

std::vector<const CLI::App*> subcommands(const CLI::App& app) {
  std::vector<const CLI::App*> subs;
  for (const CLI::App* s : app.get_subcommands([](const CLI::App*) { return true; })) subs.push_back(s);
  return subs;
}

std::string bash(const CLI::App& app) {
  const std::string prog = app.get_name();
  std::string fn = "_spt_client";
  std::string names, cases;
  for (const CLI::App* s : subcommands(app)) {
    names += (names.empty() ? "" : " ") + s->get_name();
    cases += "    " + s->get_name() + ") opts=\"" + long_options(*s) + "\" ;;\n";
  }
  return "# bash completion for " + prog + "\n" + fn + "() {\n"
         "  local cur=\"${COMP_WORDS[COMP_CWORD]}\" cmd=\"\" w\n"
         "  for w in \"${COMP_WORDS[@]:1:COMP_CWORD-1}\"; do\n"
         "    case \"$w\" in -*) ;; *) cmd=\"$w\"; break ;; esac\n"
         "  done\n"
         "  local globals=\"" + long_options(app) + "\" opts=\"\"\n"
         "  if [[ -z \"$cmd\" ]]; then\n"
         "    if [[ \"$cur\" == -* ]]; then COMPREPLY=($(compgen -W \"$globals\" -- \"$cur\"));\n"
         "    else COMPREPLY=($(compgen -W \"" + names + "\" -- \"$cur\")); fi\n"
         "    return\n"
         "  fi\n"
         "  case \"$cmd\" in\n" + cases +
         "    completion) COMPREPLY=($(compgen -W \"bash zsh\" -- \"$cur\")); return ;;\n"
         "  esac\n"
         "  if [[ \"$cur\" == -* ]]; then COMPREPLY=($(compgen -W \"$opts $globals\" -- \"$cur\"));\n"
         "  else COMPREPLY=($(compgen -f -- \"$cur\")); fi\n"
         "}\n"
         "complete -F " + fn + " " + prog + "\n";
}

std::string zsh(const CLI::App& app) {
  const std::string prog = app.get_name();
  std::string cmds;
  for (const CLI::App* s : subcommands(app)) {
    std::string d = s->get_description();
    for (auto& ch : d)
      if (ch == '\'' || ch == ':') ch = ' ';
    cmds += "    '" + s->get_name() + ":" + d + "'\n";
  }
  return "#compdef " + prog + "\n"
         "# zsh completion for " + prog + "\n"
         "_spt_client() {\n"
         "  local -a commands\n"
         "  commands=(\n" + cmds + "  )\n"
         "  local globals=(" + long_options(app) + ")\n"
         "  if (( CURRENT == 2 )); then\n"
         "    if [[ $words[CURRENT] == -* ]]; then compadd -- $globals; else _describe 'command' commands; fi\n"
         "    return\n"
         "  fi\n"
         "  local -a opts\n"
         "  case $words[2] in\n" +
         [&] {
           std::string c;
           for (const CLI::App* s : subcommands(app))
             c += "    " + s->get_name() + ") opts=(" + long_options(*s) + ") ;;\n";
           return c;
         }() +
         "    completion) compadd bash zsh; return ;;\n"
         "  esac\n"
         "  if [[ $words[CURRENT] == -* ]]; then compadd -- $opts $globals; else _files; fi\n"
         "}\n"
         "compdef _spt_client " + prog + "\n";
}

}  // namespace

std::string completion_script(const CLI::App& app, const std::string& shell) {
  if (shell == "bash") return bash(app);
  if (shell == "zsh") return zsh(app);
  throw std::invalid_argument("completion: shell must be bash or zsh (got '" + shell + "')");
}

}  // namespace spt::client
