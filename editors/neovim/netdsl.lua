-- netdsl in Neovim: the `netdsl` filetype for *.net files, the language server (`netdsl lsp`),
-- formatting, and the VS Code extension's snippets. Copy this file to
-- ~/.config/nvim/lua/netdsl.lua and call it from init.lua:
--
--   require("netdsl").setup({
--     -- all optional:
--     cmd = { "netdsl", "lsp" },        -- how to start the server
--     format_on_save = false,
--     snippets = "~/src/netdsl/editors/vscode/snippets/netdsl.json",
--   })
--
-- Neovim 0.11+ starts the server with vim.lsp.config / vim.lsp.enable; 0.10 needs the
-- nvim-lspconfig plugin.
local M = {}

-- `.net` is also the extension of SPICE and KiCad netlists and Pajek graphs: a .net file is
-- netdsl when one of its first lines starts a netdsl definition (comments come first).
local DEFINITION = { "^network%s", "^block%s", "^use%s", "^def%s", "^defaults%s" }

local function is_netdsl(bufnr)
  for _, line in ipairs(vim.api.nvim_buf_get_lines(bufnr, 0, 100, false)) do
    for _, pattern in ipairs(DEFINITION) do
      if line:match(pattern) then
        return true
      end
    end
  end
  return false
end

-- 'indentexpr': one level more after a line that ends with `:` (a network, block or train
-- header), else the previous line's indent
function M.indent()
  local previous = vim.fn.prevnonblank(vim.v.lnum - 1)
  if previous == 0 then
    return 0
  end
  local code = vim.fn.getline(previous):gsub("#.*$", ""):gsub("%s+$", "")
  local indent = vim.fn.indent(previous)
  return code:sub(-1) == ":" and indent + vim.fn.shiftwidth() or indent
end

local function load_snippets(path)
  path = vim.fn.expand(path)
  local ok_luasnip, loader = pcall(require, "luasnip.loaders.from_vscode")
  if ok_luasnip then
    -- LuaSnip reads the extension's package.json, which maps the snippets to `netdsl`
    loader.lazy_load({ paths = { vim.fs.dirname(vim.fs.dirname(path)) } })
    return
  end
  -- without LuaSnip: `:NetdslSnippet network` expands one with Neovim's own vim.snippet
  local snippets = vim.json.decode(table.concat(vim.fn.readfile(path), "\n"))
  vim.api.nvim_create_user_command("NetdslSnippet", function(command)
    local snippet = snippets[command.args]
    if snippet == nil then
      vim.notify("netdsl: no snippet " .. command.args, vim.log.levels.ERROR)
      return
    end
    vim.snippet.expand(table.concat(snippet.body, "\n"))
  end, {
    nargs = 1,
    complete = function()
      return vim.tbl_keys(snippets)
    end,
  })
end

local function start_server(cmd)
  local root_markers = { "pyproject.toml", ".git" }
  if vim.fn.has("nvim-0.11") == 1 then
    vim.lsp.config("netdsl", { cmd = cmd, filetypes = { "netdsl" }, root_markers = root_markers })
    vim.lsp.enable("netdsl")
    return
  end
  local configs = require("lspconfig.configs") -- nvim-lspconfig, for Neovim 0.10
  if not configs.netdsl then
    configs.netdsl = {
      default_config = {
        cmd = cmd,
        filetypes = { "netdsl" },
        root_dir = require("lspconfig.util").root_pattern(unpack(root_markers)),
        single_file_support = true,
      },
    }
  end
  require("lspconfig").netdsl.setup({})
end

function M.setup(opts)
  opts = opts or {}
  local cmd = opts.cmd or { "netdsl", "lsp" }

  vim.filetype.add({
    extension = {
      net = function(_, bufnr)
        return is_netdsl(bufnr) and "netdsl" or nil
      end,
    },
  })

  local group = vim.api.nvim_create_augroup("netdsl", { clear = true })
  vim.api.nvim_create_autocmd("FileType", {
    group = group,
    pattern = "netdsl",
    callback = function(event)
      local bo = vim.bo[event.buf]
      bo.commentstring = "# %s"
      bo.comments = ":#"
      bo.expandtab = true
      bo.shiftwidth = 4
      bo.softtabstop = 4
      bo.indentexpr = "v:lua.require'netdsl'.indent()"
      bo.indentkeys = "!^F,o,O"
      -- `gq` without the server: netdsl fmt reads the lines on stdin
      bo.formatprg = "netdsl fmt -"
      if opts.format_on_save then
        vim.api.nvim_create_autocmd("BufWritePre", {
          group = group,
          buffer = event.buf,
          callback = function()
            vim.lsp.buf.format({ bufnr = event.buf, name = "netdsl" })
          end,
        })
      end
    end,
  })

  start_server(cmd)
  if opts.snippets then
    load_snippets(opts.snippets)
  end
end

return M
