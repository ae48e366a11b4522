# fish's own prompt, with a right prompt: the last status and the time.
function fish_right_prompt
    set -l s $status
    set_color brblack
    printf '[%s] %s' $s (date +%H:%M:%S)
    set_color normal
end
function fish_greeting; end
